"""The web as served: nginx (gateway/web/edge.py) in front of uvicorn on a Unix socket.

Each test talks to a real nginx on a free loopback port in front of the real app in a process
of its own (tests/web/served.py), so it sees what a phone, or an attacker, would: slow
connections, huge bodies and anonymous uploads end at the edge, and the app process (its
descriptors, its memory, its temporary files) never notices. Raw sockets send a request's
head and only part of its body: an answer that comes back while the body is unfinished is an
answer given without reading it.
"""

from __future__ import annotations

import re
import resource
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

from gateway.config.web import WebConfig
from gateway.tenant_csv import MAX_FILE_BYTES
from gateway.web import edge
from gateway.web.app import create_app
from gateway.web.server import WebServer
from tests.cloud.pki import make_pki
from tests.store.factories import id_number, phone

from .building import BuildingGateway
from .conftest import PASSWORDS
from .served import ServedPage, free_port, serve_page

MIB = 1024 * 1024
SLOW = 1100  # half-open connections that used up the app's 1,024 descriptors
SLOW_BODIES = 100  # of them: headers finished, the body never
OTHER_ADDRESS = "127.0.0.2"  # another client: loopback answers to all of 127/8
WAIT = 60.0  # how long a socket waits for nginx before the test gives up (a hang, not a time)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[ServedPage]:
    """The page as production serves it."""
    with serve_page(tmp_path) as served:
        yield served


def connect(page: ServedPage, data: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A connection to the page that has sent `data` and nothing more."""
    host, port = page.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT,
                                    source_address=(source, 0))  # fmt: skip
    sock.sendall(data)
    return sock


def read_head(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """The status and headers of the answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer after {data!r}"
        data += chunk
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def request_head(method: str, path: str, length: int | None, content_type: str) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: {content_type}\r\n"
            f"{framing}\r\n\r\n").encode()  # fmt: skip


def multipart_start(boundary: str, size: int) -> bytes:
    """The start of a form whose file part is `size` bytes."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
        f' filename="x.csv"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode() + b"x" * size


def send_until_closed(sock: socket.socket, size: int) -> None:
    """Send up to `size` more bytes, as a client that does not listen would."""
    chunk = b"x" * MIB
    try:
        for _ in range(size // MIB):
            sock.sendall(chunk)
    except OSError:  # nginx closed: the rest was not wanted
        pass


def outcome(sock: socket.socket) -> str:
    """How a slow connection ended: refused at once with 503, or dropped without an answer."""
    with sock:
        try:
            first = sock.recv(64)
        except ConnectionResetError:
            return "dropped"
        except TimeoutError:
            return "still open"
    if first.startswith(b"HTTP/1.1 503"):
        return "refused"
    return "dropped" if first == b"" else f"answered {first[:12]!r}"


def app_sockets(page: ServedPage) -> int:
    return sum(target.startswith("socket:") for target in page.app_files())


def head_login(client: httpx.Client, username: str = "head") -> str:
    response = client.post(
        "/api/v1/login", json={"username": username, "password": PASSWORDS[username][1]}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


# ------------------------------------------------------------------------------ findings


def test_slow_connections_end_at_the_edge_while_the_page_answers(page: ServedPage) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW + 200:  # this test's own side of the connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    sockets_before = app_sockets(page)
    half_open = [connect(page, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
                 for _ in range(SLOW - SLOW_BODIES)]  # fmt: skip
    login = request_head("POST", "/api/v1/login", 100, "application/json")
    slow_bodies = [connect(page, login + b'{"username"') for _ in range(SLOW_BODIES)]

    # Meanwhile the page answers another client, and the app holds no more descriptors.
    with httpx.Client(
        base_url=page.url, timeout=WAIT, transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS)
    ) as other:
        assert other.get("/healthz").status_code == 200
        head_login(other)
    assert app_sockets(page) <= sockets_before + 1  # one may still be closing
    assert len(page.app_files()) < 100  # its database, a reader per worker thread, sockets

    # nginx drops the half-open ones at client_header_timeout and the unfinished bodies at
    # client_body_timeout; one address gets CONNECTIONS_PER_CLIENT requests, the rest 503.
    ends = Counter(outcome(sock) for sock in half_open + slow_bodies)
    assert ends["refused"] >= SLOW_BODIES - edge.CONNECTIONS_PER_CLIENT, ends
    assert ends["refused"] + ends["dropped"] == SLOW, ends
    assert app_sockets(page) <= sockets_before + 1


def test_a_300_mib_login_body_is_refused_before_the_app_reads_it(page: ServedPage) -> None:
    rss_before, sockets_before = page.app_rss_kib(), app_sockets(page)
    size = 300 * MIB
    head = request_head("POST", "/api/v1/login", size, "application/json")
    with connect(page, head + b'{"username": "head", "password": "') as sock:
        status, _ = read_head(sock)  # nothing more of the body was sent
        assert status == 413
        send_until_closed(sock, size)
    assert page.app_rss_kib() - rss_before < 16 * 1024  # the finding: +1,649 MiB
    assert app_sockets(page) <= sockets_before


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_multipart_upload_to_login_is_refused_before_anything_is_spooled(
    page: ServedPage, framing: str
) -> None:
    size = 20 * MIB
    head = request_head("POST", "/login", size if framing == "length" else None,
                        "multipart/form-data; boundary=edge")  # fmt: skip
    start = multipart_start("edge", 2 * MIB)  # past Starlette's 1 MiB spool threshold
    if framing == "chunked":
        start = f"{len(start):x}\r\n".encode() + start + b"\r\n"
    with connect(page, head + start) as sock:
        status, _ = read_head(sock)
    assert status == 413
    assert page.temp_files() == []


def test_only_a_building_heads_upload_is_read_and_imported(page: ServedPage) -> None:
    # Anonymous: auth_request answers before the body is read; the page's way, the login page.
    size = 5 * MIB
    head = request_head("POST", "/import", size, "multipart/form-data; boundary=edge")
    with connect(page, head + multipart_start("edge", 256 * 1024)) as sock:
        status, headers = read_head(sock)
    assert (status, headers.get("location")) == (303, "/login")
    assert page.temp_files() == []
    # Logged in but not a building head: refused the same way, in both languages.
    with httpx.Client(base_url=page.url, timeout=WAIT) as police:
        head_login(police, "police")
        refused = police.post("/import", files={"file": ("x.csv", b"x" * MIB)})
        assert refused.status_code == 403
        assert "此页面不属于您的角色" in refused.text

    # The building head's import, larger than any other body the page accepts.
    rows = [f"0601,租客{n},{id_number(600 + n)},{phone(600 + n)},{7000 + n},2026-01-01,"
            "2027-01-01" for n in range(1500)]  # fmt: skip
    data = "\n".join(["room,name,id_number,phone,card,valid_from,valid_until", *rows]).encode()
    assert len(data) > edge.MAX_BODY
    with httpx.Client(base_url=page.url, timeout=WAIT) as client:
        csrf = head_login(client)
        done = client.post("/import", data={"csrf_token": csrf},
                           files={"file": ("tenants.csv", data)})  # fmt: skip
        assert done.status_code == 200, done.text[:500]
        listed = client.get("/api/v1/tenants", params={"room": "0601", "limit": 500})
        assert len(listed.json()) == 500
    assert page.temp_files() == []


# ------------------------------------------------------------------------ the edge itself


def test_the_app_learns_the_client_address_from_nginx_and_from_nobody_else(
    page: ServedPage,
) -> None:
    spoofed = {"X-Forwarded-For": "10.6.6.6"}
    with httpx.Client(
        base_url=page.url,
        timeout=WAIT,
        headers=spoofed,
        transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS),
    ) as police:
        head_login(police, "police")
        assert police.get("/api/v1/entries", params={"purpose": "case 1"}).status_code == 200
        audit = police.get("/api/v1/audit").json()
    assert [row["remote"] for row in audit if row["action"] == "entries.query"] == [OTHER_ADDRESS]


def test_on_tcp_the_app_ignores_forwarded_headers(gateway: BuildingGateway) -> None:
    server = WebServer(create_app(gateway), "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"X-Forwarded-For": "10.6.6.6"}) as police:
            head_login(police, "police")
            police.get("/api/v1/entries", params={"purpose": "case 2"})
            audit = police.get("/api/v1/audit").json()
    finally:
        server.stop()
    assert [row["remote"] for row in audit if row["action"] == "entries.query"] == ["127.0.0.1"]


def test_tls_when_the_config_has_a_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", identities=())
    web = WebConfig(host="127.0.0.1", port=free_port(), tls_cert_file=pki.server.cert,
                    tls_key_file=pki.server.key)  # fmt: skip
    trusted = ssl.create_default_context(cafile=pki.ca)
    with serve_page(tmp_path, web) as served, httpx.Client(verify=trusted) as client:
        assert served.url.startswith("https://")
        assert client.get(served.url + "/healthz").status_code == 200
        plain = httpx.get(served.url.replace("https://", "http://") + "/healthz")
        assert plain.status_code == 400  # nginx: a plain HTTP request to the HTTPS port


def test_plain_http_only_redirects_and_answers_health_on_loopback(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", identities=())
    web = WebConfig(host="127.0.0.1", port=free_port(), redirect_port=free_port(),
                    tls_cert_file=pki.server.cert, tls_key_file=pki.server.key)  # fmt: skip
    plain = f"http://127.0.0.1:{web.redirect_port}"
    with serve_page(tmp_path, web) as served:
        for path in ("/", "/login", "/police/entries?door=main", "/api/v1/login"):
            for method in ("GET", "POST"):
                answer = httpx.request(method, plain + path)
                assert answer.status_code == 301, (method, path)
                assert answer.headers["location"] == served.url + path  # same host and path
                assert "set-cookie" not in answer.headers
        health = httpx.get(plain + "/healthz")
        assert health.status_code == 200
        assert health.json()["status"] in {"ok", "degraded", "failing"}
        assert httpx.get(plain + "/metrics").status_code == 200


def test_on_the_lan_health_redirects_too(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", identities=())
    web = WebConfig(host="0.0.0.0", port=443, redirect_port=80, tls_cert_file=pki.server.cert,
                    tls_key_file=pki.server.key)  # fmt: skip
    text = edge.render_config(web, upstream=tmp_path / "web.sock", runtime_dir=tmp_path)
    assert "listen 0.0.0.0:443 ssl;" in text
    assert "listen 0.0.0.0:80;" in text
    assert text.count("return 301 https://$host$request_uri;") == 3  # /, /healthz, /metrics
    assert text.count('if ($remote_addr !~ "^(127\\.|::1$)")') == 2


def test_the_config_keeps_temporary_files_and_logs_off_the_sd_card(tmp_path: Path) -> None:
    run = tmp_path / "run"
    text = edge.render_config(WebConfig(), upstream=run / "web.sock", runtime_dir=run)
    paths = re.findall(r"^\s*\w*(?:_temp_path|pid) (\S+);", text, re.MULTILINE)
    assert len(paths) == 6
    assert all(path.startswith(str(run)) for path in paths)
    assert "access_log off;" in text
    assert "error_log stderr" in text
    assert "listen 127.0.0.1:8080;" in text
    assert "ssl" not in text
    edge.Nginx(edge.write_config(text, run)).check()  # nginx itself accepts it


def test_every_upload_route_of_the_app_gets_the_larger_limit(gateway: BuildingGateway) -> None:
    uploads = {route.path for route in api_routes(create_app(gateway).routes)
               if any(isinstance(field.field_info.annotation, type)
                      and issubclass(field.field_info.annotation, UploadFile)
                      for field in route.dependant.body_params)}  # fmt: skip
    assert uploads == set(edge.UPLOAD_ROUTES)
    assert edge.MAX_UPLOAD > MAX_FILE_BYTES


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route, those of FastAPI's lazily included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route
