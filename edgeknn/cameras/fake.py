"""A camera for tests, shipped beside the real ones: numbered frames and verbs to break it.

    cam = FakeCamera()
    cam.fail_next(2)    # the next two reads raise CameraError
    cam.disappear()     # reads and opens fail until ...
    cam.reappear()
    cam.end()           # the next read raises EndOfStream

Frame ``n`` (counting every frame delivered, from 0) is filled with ``n % 256``,
so a test can see which frames came out; :func:`frame_number` reads it back.
"""

from __future__ import annotations

import threading

import numpy as np

from edgeknn.cameras.base import EndOfStream
from edgeknn.errors import CameraError


def frame_number(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


class FakeCamera:
    def __init__(self, width: int = 32, height: int = 24, name: str = "fake camera") -> None:
        self.name = name
        self.width, self.height = width, height
        self.is_open = False
        self.opens = 0  # successful opens
        self.closes = 0
        self.delivered = 0
        self.model_size: tuple[int, int] | None = None
        self._lock = threading.Lock()  # verbs come from the test thread, reads from another
        self._failures = 0
        self._gone = False
        self._ended = False

    # test verbs
    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._failures += n

    def disappear(self) -> None:
        with self._lock:
            self._gone = True

    def reappear(self) -> None:
        with self._lock:
            self._gone = False

    def end(self) -> None:
        with self._lock:
            self._ended = True

    # the Camera interface
    def set_model_size(self, width: int, height: int) -> None:
        self.model_size = (width, height)

    def open(self) -> None:
        with self._lock:
            if self._gone:
                raise CameraError(f"{self.name}: no such device")
            self.is_open = True
            self.opens += 1

    def read(self) -> np.ndarray:
        with self._lock:
            if not self.is_open:
                raise CameraError(f"{self.name}: read while closed")
            if self._gone:
                raise CameraError(f"{self.name}: device disappeared")
            if self._failures:
                self._failures -= 1
                raise CameraError(f"{self.name}: read failed")
            if self._ended:
                raise EndOfStream(f"{self.name}: end of stream")
            n = self.delivered
            self.delivered += 1
        return np.full((self.height, self.width, 3), n % 256, dtype=np.uint8)

    def close(self) -> None:
        with self._lock:
            if self.is_open:
                self.closes += 1
            self.is_open = False
