"""Webcams (v4l2), video files and RTSP streams through OpenCV's ``VideoCapture``.

``cv2`` is imported in :meth:`OpenCvCamera.open` only, so edgeknn runs without
the ``opencv`` extra unless this source is chosen.  OpenCV delivers BGR; frames
leave here as RGB like every other camera's.

Video files are paced to ``fps`` (a file would otherwise be decoded as fast
as the CPU allows) and loop or end with :class:`EndOfStream`.  Devices and
streams run at their own rate; a failed read there is a :class:`CameraError`
(unplugged, stream gone), for the caller to close and reopen.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgeknn.cameras.base import Clock, EndOfStream, Pacer, Sleep
from edgeknn.errors import CameraError

log = logging.getLogger(__name__)

Kind = Literal["device", "stream", "file"]
# How long opening or reading a network stream may block before it counts as
# failed (FFmpeg's own default is 30 s, which stalls shutdown and recovery).
STREAM_TIMEOUT_MS = 10_000


def target_kind(target: str | int) -> tuple[Kind, str | int]:
    """What a camera path names: a device index or node, a network stream, or a file."""
    if isinstance(target, int):
        return "device", target
    text = target.strip()
    if text == "":
        return "device", 0
    if text.isdigit():
        return "device", int(text)
    if text.startswith("/dev/"):
        return "device", text
    if "://" in text:
        return "stream", text
    return "file", text


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise CameraError(
            'OpenCV is not installed; it is needed for webcams, video files and RTSP: '
            'pip install "edgeknn[opencv]"'
        ) from None
    return cv2


def to_rgb(frame: np.ndarray, cv2: Any) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as RGB uint8 (H, W, 3)."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class OpenCvCamera:
    def __init__(
        self, target: str | int = 0, *, fps: float = 0.0, loop: bool = False,
        width: int | None = None, height: int | None = None,
        clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
    ) -> None:
        self.kind, self.target = target_kind(target)
        self.name = f"opencv {self.target}"
        self.fps, self.loop = fps, loop
        self.width, self.height = width, height
        self._pacer = Pacer(fps if self.kind == "file" else 0.0, clock, sleep)
        self._cv2: Any = None
        self._cap: Any = None
        self._frames = 0  # frames read since the file was (re)opened

    def open(self) -> None:
        self._open_capture()
        self._pacer.reset()

    def _open_capture(self) -> None:
        self.close()
        cv2 = self._cv2 = import_cv2()
        if self.kind == "file" and not Path(str(self.target)).is_file():
            raise CameraError(f"{self.name}: video file {self.target} does not exist")
        try:
            self._cap = self._capture(cv2)
        except cv2.error as exc:
            raise CameraError(f"{self.name}: cannot open ({_first_line(exc)})") from None
        if not self._cap.isOpened():
            self.close()
            hint = {
                "device": "is the camera plugged in, and is this user in the video group?",
                "stream": "is the URL right and the stream reachable?",
                "file": "is it a video format FFmpeg can read?",
            }[self.kind]
            raise CameraError(f"{self.name}: cannot open; {hint}")
        self._frames = 0

    def _capture(self, cv2: Any) -> Any:
        if self.kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if self.kind == "file":
            return cv2.VideoCapture(str(self.target))
        cap = cv2.VideoCapture(self.target, getattr(cv2, "CAP_V4L2", cv2.CAP_ANY))
        # Requests, not guarantees: the driver picks the nearest mode it has.
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames when we read slower
        return cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise CameraError(f"{self.name}: read before open")
        frame = self._grab()
        if frame is None and self.kind == "file":
            if not self.loop or self._frames == 0:
                raise EndOfStream(f"{self.name}: end of video after {self._frames} frames")
            self._open_capture()  # reopening is the one rewind every container supports
            frame = self._grab()
        if frame is None:
            raise CameraError(f"{self.name}: no frame (camera unplugged or stream ended)")
        self._frames += 1
        image = to_rgb(frame, self._cv2)
        self._pacer.wait()
        return image

    def _grab(self) -> np.ndarray | None:
        try:
            ok, frame = self._cap.read()
        except self._cv2.error as exc:
            raise CameraError(f"{self.name}: read failed ({_first_line(exc)})") from None
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
