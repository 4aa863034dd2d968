"""A synthetic entrance camera: a generated scene with a running clock, served as HTTP MJPEG
on loopback, so the demo and the benchmarks go through exactly the code path a real camera's
stream does (FFmpeg, the reader thread, freshness, reconnects).

    with SyntheticCamera(width=1280, height=720, fps=10) as camera:
        config_source = camera.url          # http://127.0.0.1:PORT/video.mjpg

`python -m gateway.camera.synthetic --width 1280 --height 720 --fps 10 --port 8554` serves one
from another process (the benchmarks measure the gateway without the camera's own CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from datetime import UTC, datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import cv2
import numpy as np
from numpy.typing import NDArray

from gateway.clock import shown

BOUNDARY = "frame"


class Scene:
    """An entrance seen from above the door: walls, a door, a passer-by, the time."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        rows = np.linspace(70, 150, height, dtype=np.float32)[:, None]
        cols = np.linspace(0.8, 1.1, width, dtype=np.float32)[None, :]
        grey = (rows * cols).clip(0, 255).astype(np.uint8)
        background = np.dstack([grey, grey, grey + 10])
        door_w, door_h = width // 4, int(height * 0.7)
        x0, y0 = (width - door_w) // 2, height - door_h
        cv2.rectangle(background, (x0, y0), (x0 + door_w, height), (40, 70, 120), -1)
        frame_px = max(2, width // 320)
        cv2.rectangle(background, (x0, y0), (x0 + door_w, height), (20, 30, 50), frame_px)
        cv2.circle(background, (x0 + door_w - door_w // 8, y0 + door_h // 2),
                   max(3, width // 160), (0, 200, 230), -1)  # fmt: skip
        self._background = background
        self._scale = height / 720

    def render(self, now: datetime, frame_number: int) -> NDArray[np.uint8]:
        """The scene at `now`: a figure walks across, the clock runs."""
        image = self._background.copy()
        w, h, s = self.width, self.height, self._scale
        x = int((frame_number * 7 * s) % (w + 100)) - 50
        cv2.circle(image, (x, int(h * 0.45)), int(40 * s), (150, 170, 200), -1)
        cv2.rectangle(image, (x - int(45 * s), int(h * 0.45 + 45 * s)),
                      (x + int(45 * s), h), (90, 60, 50), -1)  # fmt: skip
        stamp = shown(now, now.tzinfo or UTC)
        thickness = max(1, round(2 * s))
        cv2.rectangle(image, (0, 0), (w, int(50 * s)), (0, 0, 0), -1)
        cv2.putText(image, "DEMO ENTRANCE CAMERA", (int(12 * s), int(34 * s)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9 * s, (255, 255, 255), thickness)  # fmt: skip
        cv2.putText(image, stamp, (w - int(420 * s), int(34 * s)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.9 * s, (0, 255, 255), thickness)  # fmt: skip
        return image


class SyntheticCamera:
    """Serves `Scene` as multipart/x-mixed-replace JPEG at `fps`; one encode per frame, shared
    by every client."""

    def __init__(
        self,
        *,
        width: int = 640,
        height: int = 360,
        fps: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
        quality: int = 80,
        zone: tzinfo = UTC,
    ) -> None:
        """`zone`: the building's, for the clock drawn on the picture."""
        self.scene = Scene(width, height)
        self.zone = zone
        self.fps = fps
        self.quality = quality
        self._frame = b""
        self._frame_number = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seen = -1
                try:
                    while not camera._stopping.is_set():
                        seen, frame = camera.next_frame(seen)
                        if not frame:
                            continue
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(frame)}\r\n\r\n".encode() + frame + b"\r\n"
                        )
                        self.wfile.flush()
                except OSError:
                    return  # the client went away

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/video.mjpg"

    def next_frame(self, seen: int) -> tuple[int, bytes]:
        """The first frame after frame number `seen` (waits up to a second for it)."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._frame_number != seen or self._stopping.is_set(), timeout=1.0
            )
            return self._frame_number, self._frame

    def start(self) -> SyntheticCamera:
        """Start rendering and serving."""
        for target, name in ((self._render, "synthetic-camera"),
                             (self.server.serve_forever, "synthetic-camera-http")):  # fmt: skip
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> SyntheticCamera:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    def _render(self) -> None:
        period = 1 / self.fps
        next_at = time.monotonic()
        number = 0
        while not self._stopping.is_set():
            image = self.scene.render(datetime.now(self.zone), number)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                with self._changed:
                    self._frame = encoded.tobytes()
                    self._frame_number = number = number + 1
                    self._changed.notify_all()
            next_at += period
            self._stopping.wait(max(0.0, next_at - time.monotonic()))


def main() -> None:
    """Serve a synthetic camera until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    camera = SyntheticCamera(width=args.width, height=args.height, fps=args.fps, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with camera:
        print(camera.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
