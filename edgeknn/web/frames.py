"""JPEG frames for the live view: encoded only when asked, from the newest frame, at a bounded rate.

Nothing is encoded while nobody watches: the processing loop never calls in
here.  A viewer (MJPEG stream or snapshot) asks :meth:`JpegFrames.latest`; the
newest camera frame is encoded at most ``max_fps`` times a second and the
JPEG is shared by every viewer, so ten phones cost what one does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeknn.images import encode_jpeg
from edgeknn.results import Frame


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    frame_index: int
    width: int
    height: int


class JpegFrames:
    """``newest`` returns the newest camera frame (FrameSlot.latest), or None before the first."""

    def __init__(self, newest: Callable[[], Frame | None], *, max_fps: float, max_side: int,
                 quality: int, clock: Callable[[], float] = time.monotonic,
                 encode: Callable[..., bytes] = encode_jpeg) -> None:
        self._newest = newest
        self._period = 1.0 / max_fps
        self._max_side = max_side
        self._quality = quality
        self._clock = clock
        self._encode = encode
        self._lock = threading.Lock()
        self._cached: Jpeg | None = None
        self._encoded_at = float("-inf")
        self.encoded = 0  # how many frames were encoded, for tests and metrics

    @property
    def period(self) -> float:
        return self._period

    def latest(self) -> Jpeg | None:
        """The newest frame as JPEG; re-encoded only if a newer frame came and the last
        encoding is at least one period old.  Called from worker threads."""
        with self._lock:
            now = self._clock()
            frame = self._newest()
            if frame is None:
                return self._cached
            cached = self._cached
            if cached is not None and (cached.frame_index == frame.index or now - self._encoded_at < self._period):
                return cached
            data = self._encode(frame.image, self._max_side, self._quality)
            self._cached = Jpeg(data, frame.index, frame.width, frame.height)
            self._encoded_at = now
            self.encoded += 1
            return self._cached

    def full_size(self) -> Jpeg | None:
        """The newest frame at its own size (for /snapshot.jpg), not cached."""
        frame = self._newest()
        if frame is None:
            return None
        return Jpeg(self._encode(frame.image, None, 90), frame.index, frame.width, frame.height)
