"""Only the headless OpenCV wheel: the GUI wheels need libGL, which Raspberry Pi OS Lite lacks."""

from __future__ import annotations

from importlib import metadata

GUI_WHEELS = ("opencv-python", "opencv-contrib-python")


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_only_headless_opencv_is_installed() -> None:
    # Every OpenCV wheel installs the same `cv2` package, so one would overwrite the other.
    assert _installed("opencv-python-headless")
    assert [name for name in GUI_WHEELS if _installed(name)] == []
