"""The web page's edge: nginx in front of uvicorn, holding the limits uvicorn lacks.

uvicorn waits for a request's headers forever (about 1,100 half-open connections used up the
process's 1,024 descriptors), reads whatever body it is sent (one 300 MiB JSON login took the
process from 244 to 1,893 MiB before any password check), and Starlette's form parser spools a
multipart upload to $TMPDIR, the SD card, before the route runs. nginx bounds all of it where
it arrives: short timeouts, small header buffers, a 64 KiB body for everything but the CSV
import, whose body is read only after the app said the caller is a building head
(`auth_request` to `GET /auth/upload`), connection limits, temporary files in the runtime
folder (tmpfs) only. uvicorn listens on a Unix socket that only nginx uses. docs/web.md, "The
edge (nginx)", says why each number is what it is.

    conf = write_config(render_config(web, upstream=run / "web.sock", runtime_dir=run), run)
    edge = Nginx(conf)
    edge.start()          # nginx in the foreground, a child of this process
    ...
    edge.stop()

`render_config` is a pure function; nothing here does I/O at import.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from gateway.config.web import WebConfig, is_loopback
from gateway.tenant_csv import MAX_FILE_BYTES
from gateway.web.i18n import WORDS

KIB = 1024

# A person's phone sends its headers in one go; 10 s is plenty even on a poor Wi-Fi, and it
# is also the TLS handshake's limit (nginx 1.22 counts the handshake as header time). Every
# half-open connection costs nginx about 1 KiB for at most this long.
TIMEOUT_SECONDS = 10
# Headers: a request line, a session cookie, a language cookie. 1 KiB covers nearly all;
# four 4 KiB buffers are the most one request may hold (a longer line is 414, a larger
# header 400). uvicorn's own limit (server.py) is above this, so nginx is the one to refuse.
HEADER_BUFFER = 1 * KIB
LARGE_HEADER_BUFFERS = (4, 4 * KIB)
# Every form and JSON body of the page is a few hundred bytes; 64 KiB is generous and is also
# the memory buffer, so an accepted body never touches a file.
MAX_BODY = 64 * KIB
# The CSV import takes files up to MAX_FILE_BYTES; the multipart framing and the CSRF field
# need a few more bytes.
UPLOAD_ROUTES = ("/import",)
MAX_UPLOAD = MAX_FILE_BYTES + 64 * KIB
UPLOAD_BUFFER = 1024 * KIB  # a usual tenant list stays in memory; a larger one goes to tmpfs
UPLOADS_AT_ONCE = 2  # each may hold up to MAX_UPLOAD of the runtime folder (tmpfs)
# An import of 20,000 rows took about 6 s here and is estimated at 15-25 s on a Pi 4; a
# 50 MiB file may hold 500,000.
UPLOAD_READ_TIMEOUT_SECONDS = 600
# A phone browser opens up to 6 connections; a few phones behind one NAT share an address.
CONNECTIONS_PER_CLIENT = 16
# Requests in flight to the app at once; uvicorn's own limit (server.py) is above it.
REQUESTS_AT_ONCE = 48
# Connections nginx holds, open or half-open (a slow client ties one until TIMEOUT_SECONDS):
# about 2 KiB each when busy, so 4,096 cost about 8 MiB on a Pi. Each proxied request uses a
# second descriptor towards the app, hence twice as many files.
WORKER_CONNECTIONS = 4096
WORKER_FILES = 2 * WORKER_CONNECTIONS
# nginx's own answers (a refused body, a full house, the app down) are read by people.
EDGE_MESSAGES = {
    403: "error.forbidden",
    413: "edge.too_large",
    502: "edge.unavailable",
    503: "edge.busy",
    504: "edge.unavailable",
}
# nginx makes a temporary folder for each module built in, used or not; left to their
# defaults they would be under /var/lib/nginx, on the SD card.
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class EdgeError(RuntimeError):
    """nginx refused its configuration or did not start; the message carries its words."""


def render_config(web: WebConfig, *, upstream: Path, runtime_dir: Path,
                  user: str | None = None) -> str:  # fmt: skip
    """The nginx.conf that serves `web` (host, port, TLS) from the app on `upstream`.

    `runtime_dir` (a tmpfs such as /run/rental-gateway) holds nginx's pid file and every
    temporary file it may write. `user` is the account of nginx's workers when nginx starts as
    root (the tests); under systemd nginx starts as the gateway's own user and it stays None.

        render_config(WebConfig(port=8080), upstream=Path("/run/g/web.sock"),
                      runtime_dir=Path("/run/g"))
    """
    run = runtime_dir
    listen = f"{_listen_host(web.host)}:{web.port}" + (" ssl" if web.tls else "")
    tls = ""
    if web.tls:
        tls = f"""
        ssl_certificate {_path(Path(str(web.tls_cert_file)))};
        ssl_certificate_key {_path(Path(str(web.tls_key_file)))};
        ssl_protocols TLSv1.2 TLSv1.3;
        # A phone coming back skips the full handshake: cheaper on a Pi's CPU.
        ssl_session_cache shared:tls:1m;
        ssl_session_timeout 1h;"""
    routes = "|".join(route.strip("/") for route in UPLOAD_ROUTES)
    temp_paths = "\n".join(f"    {name}_temp_path {_path(run / 'nginx' / name)};"
                           for name in TEMP_FOLDERS)  # fmt: skip
    return f"""\
# Rendered by gateway/web/edge.py at every start; edit that file, not this one.
daemon off;
{f"user {user};" if user else ""}
worker_processes 1;
worker_rlimit_nofile {WORKER_FILES};
pid {_path(run / "nginx.pid")};
error_log stderr warn;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    access_log off;
    server_tokens off;
    default_type application/octet-stream;
{temp_paths}

    client_header_timeout {TIMEOUT_SECONDS}s;
    client_body_timeout {TIMEOUT_SECONDS}s;
    send_timeout {TIMEOUT_SECONDS}s;
    keepalive_timeout {TIMEOUT_SECONDS}s;
    keepalive_requests 100;
    lingering_time {TIMEOUT_SECONDS}s;
    reset_timedout_connection on;
    client_header_buffer_size {HEADER_BUFFER // KIB}k;
    large_client_header_buffers {LARGE_HEADER_BUFFERS[0]} {LARGE_HEADER_BUFFERS[1] // KIB}k;
    client_max_body_size {MAX_BODY // KIB}k;
    client_body_buffer_size {MAX_BODY // KIB}k;

    limit_conn_zone $binary_remote_addr zone=per_client:1m;
    # One key for the whole page ($server_port never changes): a limit on everything at once.
    limit_conn_zone $server_port zone=whole_page:256k;
    limit_conn_zone $server_port zone=uploads:256k;
    limit_conn_status 503;
    limit_conn_log_level warn;

    upstream app {{
        server unix:{_path(upstream)};
    }}

    server {{
        listen {listen};
        absolute_redirect off;{tls}

        limit_conn per_client {CONNECTIONS_PER_CLIENT};
        limit_conn whole_page {REQUESTS_AT_ONCE};
{_error_pages(413, 502, 503, 504)}
{_proxy_settings()}
        # An upload goes to its own location, where the body limit is large and auth_request
        # asks the app first; decided here, before nginx compares the body with a location's
        # limit, and only for POST, so the form's page itself stays an ordinary request.
        if ($request_method = POST) {{
            rewrite ^/({routes})$ /_edge/upload/$1 last;
        }}

        location / {{
            proxy_pass http://app;
        }}

        location /_edge/upload/ {{
            internal;
            client_max_body_size {MAX_UPLOAD // KIB}k;
            client_body_buffer_size {UPLOAD_BUFFER // KIB}k;
            limit_conn per_client {CONNECTIONS_PER_CLIENT};
            limit_conn whole_page {REQUESTS_AT_ONCE};
            limit_conn uploads {UPLOADS_AT_ONCE};
            auth_request /_edge/may-upload;
{_error_pages(401, 403, 413, 502, 503, 504, indent=12)}
            proxy_read_timeout {UPLOAD_READ_TIMEOUT_SECONDS}s;
            proxy_pass http://app/;
        }}

        # Headers only: the body of the request being checked is neither read nor sent.
        location = /_edge/may-upload {{
            internal;
            # The subrequest sees the upload's Content-Length; here no body is read at all.
            client_max_body_size 0;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
{_proxy_headers(indent=12)}
            proxy_pass http://app/auth/upload;
        }}

        # A page asked for without a session goes to the login page, as the app's pages do.
        location @edge_401 {{
            return 303 /login;
        }}
{_message_locations()}
    }}
{_redirect_server(web)}}}
"""


def _redirect_server(web: WebConfig) -> str:
    """Plain HTTP that sends every browser on to HTTPS, and /healthz to loopback only."""
    if web.redirect_port is None:
        return ""
    host = "$host" if web.port == 443 else f"$host:{web.port}"
    health = "\n".join(f"""
        location = {path} {{
            if ($remote_addr !~ "^(127\\.|::1$)") {{
                return 301 https://{host}$request_uri;
            }}
{_proxy_headers(indent=12)}
            proxy_pass http://app;
        }}""" for path in ("/healthz", "/metrics"))
    listen = [f"listen {_listen_host(web.host)}:{web.redirect_port};"]
    if not _covers_loopback(web.host):
        listen.append(f"listen 127.0.0.1:{web.redirect_port};")  # health on the box itself
    return f"""
    server {{
        {" ".join(listen)}
        limit_conn per_client {CONNECTIONS_PER_CLIENT};
        location / {{
            return 301 https://{host}$request_uri;
        }}{health}
    }}
"""


def write_config(text: str, runtime_dir: Path) -> Path:
    """Write `text` as runtime_dir/nginx.conf; returns its path. Creates the folder and the
    one nginx makes its temporary folders in."""
    (runtime_dir / "nginx").mkdir(mode=0o750, parents=True, exist_ok=True)
    conf = runtime_dir / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def nginx_binary() -> str:
    """Debian's nginx (package `nginx`: ssl, auth_request and limit_conn built in)."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """nginx in the foreground on a rendered config, as a child process.

    For the tests, the demo and a supervisor; a systemd unit can run the same command
    (`command()`) itself.
    """

    def __init__(self, conf: Path, *, binary: str | None = None,
                 log: Path | None = None) -> None:  # fmt: skip
        self.conf = conf
        self._binary = binary or nginx_binary()
        self._log = log  # nginx's error log (its stderr); by default this process's stderr
        self._process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        """The command line: the config's own `daemon off;` keeps nginx in the foreground."""
        return [self._binary, "-e", "stderr", "-c", str(self.conf), *extra]

    def check(self) -> None:
        """Ask nginx whether it accepts the config (`nginx -t`); EdgeError with its words."""
        done = subprocess.run(self.command("-t", "-q"), capture_output=True,  # noqa: S603
                              check=False)  # fmt: skip
        if done.returncode != 0:
            raise EdgeError(done.stderr.decode(errors="replace").strip())

    def start(self, timeout: float = 10.0) -> None:
        """Start nginx and return once it listens (its pid file is written after binding)."""
        pid_file = self.conf.parent / "nginx.pid"
        pid_file.unlink(missing_ok=True)
        log = self._log.open("ab") if self._log else None
        try:  # nginx and a config path of ours, no shell (noqa: S603)
            self._process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,  # noqa: S603
                                             stderr=log)  # fmt: skip
        finally:
            if log is not None:
                log.close()
        deadline = time.monotonic() + timeout
        while not _holds_pid(pid_file, self._process.pid):
            if self._process.poll() is not None:
                raise EdgeError(f"nginx exited with {self._process.returncode}; see its stderr")
            if time.monotonic() > deadline:
                self.stop()
                raise EdgeError(f"nginx did not start within {timeout:.0f} s")
            time.sleep(0.02)

    def reload(self) -> None:
        """Read the config again without a restart (SIGHUP: nginx checks it, starts new
        workers and lets the old ones finish their requests); EdgeError if it is refused."""
        self.check()
        if self._process is None or self._process.poll() is not None:
            raise EdgeError("nginx is not running")
        self._process.send_signal(signal.SIGHUP)

    @property
    def pid(self) -> int | None:
        """The master process's id while it runs."""
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        """Tell whether nginx still runs."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGTERM: open connections are closed), then wait for it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _holds_pid(pid_file: Path, pid: int) -> bool:
    try:
        return pid_file.read_text().strip() == str(pid)
    except FileNotFoundError:
        return False


def _covers_loopback(host: str) -> bool:
    """Whether listening on `host` also listens on 127.0.0.1."""
    return host in ("0.0.0.0", "::") or is_loopback(host)  # noqa: S104


def _listen_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _path(path: Path) -> str:
    text = os.fspath(path)
    if not path.is_absolute() or any(c in text for c in " ;{}\"'$#\\\n"):
        raise ValueError(f"nginx needs a plain absolute path, not {text!r}")
    return text


def _proxy_headers(indent: int = 8) -> str:
    pad = " " * indent
    return "\n".join(pad + line for line in (
        "proxy_set_header Host $host;",
        # Set, not appended: the app trusts these on its Unix socket (server.py), so a
        # client's own X-Forwarded-For never gets through.
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ))  # fmt: skip


def _proxy_settings() -> str:
    return f"""\
        proxy_http_version 1.1;
{_proxy_headers()}
        proxy_redirect off;
        proxy_connect_timeout 5s;
        # The card enrollment's long poll waits up to 25 s for an answer.
        proxy_read_timeout 60s;
        proxy_buffer_size 8k;
        # A response (a CSV export) is passed on as the client takes it, never spooled.
        proxy_max_temp_file_size 0;
"""


def _error_pages(*codes: int, indent: int = 8) -> str:
    return "\n".join(f"{' ' * indent}error_page {code} = @edge_{code};" for code in codes)


def _message_locations() -> str:
    blocks = []
    for code, key in EDGE_MESSAGES.items():
        zh, en = WORDS[key]
        text = f"{zh}\\n{en}\\n"
        if any(c in text for c in '"$'):
            raise ValueError(f"{key}: nginx's return text must hold no quote or dollar sign")
        blocks.append(f"""
        location @edge_{code} {{
            default_type "text/plain; charset=utf-8";
            return {code} "{text}";
        }}""")
    return "".join(blocks)
