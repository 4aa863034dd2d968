"""The sticker for the gateway's box: a QR code that opens the page, its address, its fingerprint.

Drawn with OpenCV, which the gateway has for its camera already: `cv2.QRCodeEncoder` makes
the code and `cv2.putText` the lines under it, so no library is added for a picture made once
per building. The text is ASCII (addresses and hex); OpenCV's fonts have no Chinese.

    print(terminal_qr("https://192.168.1.20/"))
    Path("page-sticker.png").write_bytes(sticker_png("https://192.168.1.20/", ["3A:1F:…"]))
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

QUIET_MODULES = 4  # the blank margin a scanner needs around the code
MODULE_PX = 8
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.55
LINE_PX = 26


def qr_modules(text: str) -> npt.NDArray[np.bool_]:
    """The code's modules, True where dark, with the quiet margin around them."""
    encoded = cv2.QRCodeEncoder.create().encode(text)
    dark = np.asarray(encoded) < 128
    rows = np.flatnonzero(dark.any(axis=1))
    cols = np.flatnonzero(dark.any(axis=0))
    core = dark[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.pad(core, QUIET_MODULES, constant_values=False)


def terminal_qr(text: str) -> str:
    """The code in text, two module rows per line with half blocks, light modules drawn.

    Drawn for a terminal with light letters on a dark background (an SSH window, the
    console), where a drawn character is light.
    """
    light = ~qr_modules(text)
    if light.shape[0] % 2:
        light = np.vstack([light, np.ones((1, light.shape[1]), dtype=bool)])
    glyphs = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return "\n".join(
        "".join(glyphs[bool(top), bool(bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(light[0::2], light[1::2], strict=True)
    )


def sticker_png(url: str, lines: list[str]) -> bytes:
    """A PNG to print: the code for `url`, then `url` and `lines` under it."""
    code = np.where(qr_modules(url), 0, 255).astype(np.uint8)
    code = np.kron(code, np.ones((MODULE_PX, MODULE_PX), dtype=np.uint8))
    texts = [url, *lines]
    widest = max(cv2.getTextSize(t, FONT, FONT_SCALE, 1)[0][0] for t in texts)
    width = max(code.shape[1], widest + 2 * QUIET_MODULES * MODULE_PX)
    height = code.shape[0] + LINE_PX * len(texts) + QUIET_MODULES * MODULE_PX
    canvas = np.full((height, width), 255, dtype=np.uint8)
    left = (width - code.shape[1]) // 2
    canvas[: code.shape[0], left : left + code.shape[1]] = code
    for n, text in enumerate(texts, start=1):
        cv2.putText(canvas, text, (QUIET_MODULES * MODULE_PX, code.shape[0] + n * LINE_PX - 8),
                    FONT, FONT_SCALE, 0, 1, cv2.LINE_AA)  # fmt: skip
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise ValueError("OpenCV could not encode the sticker as PNG")
    return bytes(png)
