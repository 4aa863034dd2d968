"""The page as production serves it: nginx on a loopback port in front of uvicorn on a Unix
socket, in a process of its own serving the real app over a real store.

    with serve_page(folder) as page:
        httpx.get(page.url + "/healthz")
        page.app_files()        # the app process's open descriptors

The app process is `python -m tests.web.served DATA_DIR SOCKET`; its $TMPDIR is page.app_tmp,
so anything Starlette spools lands where a test can look.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.config.web import WebConfig
from gateway.web.edge import Nginx, render_config, write_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServedPage:
    """Where the page answers, and what a test may look at behind it."""

    url: str
    app: subprocess.Popen[bytes]
    runtime_dir: Path  # nginx's pid file and temporary folders (a tmpfs in production)
    app_tmp: Path  # the app process's $TMPDIR
    edge: Nginx

    def app_rss_kib(self) -> int:
        """The app process's resident memory."""
        status = Path(f"/proc/{self.app.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match, status
        return int(match.group(1))

    def edge_pids(self) -> list[int]:
        """nginx's master and worker processes."""
        master = self.edge.pid
        assert master is not None
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return [master, *map(int, children)]

    def temp_files(self) -> list[str]:
        """Every file in nginx's temporary folders and the app's $TMPDIR, also those already
        unlinked but still open (nginx and Python's tempfile unlink theirs at once)."""
        folders = (self.runtime_dir / "nginx", self.app_tmp)
        listed = [str(p) for folder in folders for p in folder.rglob("*") if p.is_file()]
        held = [target for pid in (self.app.pid, *self.edge_pids())
                for target in _open_files(pid)
                if target.startswith(tuple(str(folder) for folder in folders))]  # fmt: skip
        return listed + held

    def app_files(self) -> list[str]:
        """What the app process's descriptors point at."""
        return _open_files(self.app.pid)


def _open_files(pid: int) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.append(os.readlink(fd))
        except FileNotFoundError:  # closed meanwhile
            continue
    return found


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_page(folder: Path, web: WebConfig | None = None) -> Iterator[ServedPage]:
    """Start the app process and nginx in front of it, where `web` says (a free loopback
    port by default); stop both afterwards."""
    # A Unix socket's path has at most 107 bytes: pytest's tmp_path can be longer.
    run = Path(tempfile.mkdtemp(prefix="edge-"))
    app_tmp = folder / "app-tmp"
    app_tmp.mkdir()
    sock = run / "web.sock"
    env = {**os.environ, "TMPDIR": str(app_tmp), "PYTHONPATH": str(ROOT)}
    app = subprocess.Popen([sys.executable, "-m", "tests.web.served", str(folder / "data"),
                            str(sock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           env=env, cwd=ROOT)  # fmt: skip
    edge: Nginx | None = None
    try:
        assert app.stdout is not None
        assert app.stdout.readline() == b"ready\n", "the app process did not start"
        web = web or WebConfig(host="127.0.0.1", port=free_port())
        # As root (the tests' containers) nginx's workers would become "nobody", who may not
        # use the app's socket; under systemd nginx starts as the gateway's user instead.
        user = "root" if os.geteuid() == 0 else None
        edge = Nginx(write_config(render_config(web, upstream=sock, runtime_dir=run,
                                                user=user), run),
                     log=folder / "nginx.log")  # fmt: skip
        edge.start()
        scheme = "https" if web.tls else "http"
        yield ServedPage(f"{scheme}://{web.host}:{web.port}", app, run, app_tmp, edge)
    finally:
        if edge is not None:
            edge.stop()
        if app.stdin is not None:
            app.stdin.close()  # the app process stops at the end of its input
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        shutil.rmtree(run, ignore_errors=True)


def main(data_dir: str, sock: str) -> None:
    """Serve the real app over a store with one user per role until stdin closes."""
    # systemd's default soft limit: the gateway's unit sets no LimitNOFILE.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    from gateway.store import Store
    from gateway.web.app import create_app
    from gateway.web.server import WebServer

    from .building import BuildingGateway
    from .conftest import GATEWAY_ID, PASSWORDS

    with Store.open(Path(data_dir), GATEWAY_ID) as store:
        for username, (role, password) in PASSWORDS.items():
            store.add_user(username, role, password)
        server = WebServer(create_app(BuildingGateway(store, Path(data_dir))),
                           unix_socket=Path(sock))  # fmt: skip
        server.start()
        print("ready", flush=True)
        sys.stdin.read()
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
