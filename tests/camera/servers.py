"""Loopback cameras for the tests: an MJPEG stream that can stall or drop, a snapshot URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "frame"


def jpeg(shade: int, width: int = 160, height: int = 120) -> bytes:
    """A small grey JPEG."""
    ok, encoded = cv2.imencode(".jpg", np.full((height, width, 3), shade, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


class MjpegCamera:
    """multipart/x-mixed-replace JPEG frames at `fps`; `stall()` keeps the connection silent."""

    def __init__(self, fps: float = 20.0, port: int = 0) -> None:
        self.fps = fps
        self.sending = threading.Event()
        self.sending.set()
        self.closing = threading.Event()
        self.connections = 0
        self._frame = jpeg(128)
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    while not camera.closing.is_set():
                        if camera.sending.is_set():
                            self.wfile.write(
                                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                f"Content-Length: {len(camera._frame)}\r\n\r\n".encode()
                                + camera._frame
                                + b"\r\n"
                            )
                            self.wfile.flush()
                        camera.closing.wait(1 / camera.fps)
                except OSError:
                    return
                finally:
                    # Close the socket itself: a stream "dropped" by the camera.
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"

    def stall(self) -> None:
        self.sending.clear()

    def resume(self) -> None:
        self.sending.set()

    def drop_connections(self) -> None:
        """End every open response; new requests are served again afterwards."""
        self.closing.set()

    def accept_again(self) -> None:
        self.closing.clear()


@contextmanager
def mjpeg_camera(fps: float = 20.0, port: int = 0) -> Iterator[MjpegCamera]:
    """A running MjpegCamera; on leaving, it is gone (connections refused), as a dead camera."""
    camera = MjpegCamera(fps, port)
    thread = threading.Thread(target=camera.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield camera
    finally:
        camera.closing.set()
        camera.server.shutdown()
        camera.server.server_close()


@contextmanager
def snapshot_camera(body: bytes) -> Iterator[str]:
    """An http server answering every GET with `body` as image/jpeg; yields its snapshot URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/snapshot.cgi"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for connection in accepted:
            connection.close()
        listener.close()
