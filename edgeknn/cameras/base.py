"""The one interface every camera source implements, and what they share.

A camera is opened, read one frame at a time, and closed::

    cam.open()            # CameraError if it cannot be opened
    image = cam.read()    # RGB uint8 (H, W, 3); blocks until the next frame
    cam.close()           # always safe, also after a failure

``read`` raises :class:`CameraError` when the source failed or disappeared
(the caller may close and reopen it: see ``RetryingCamera``), and
:class:`EndOfStream` when a source that does not loop has no more frames.
Sources that can use the model's input size (the Pi camera's ISP scaler)
also have ``set_model_size(width, height)``, a hint given before ``open``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from edgeknn.errors import CameraError

Sleep = Callable[[float], object]  # time.sleep, or a stop Event's wait so shutdown is quick
Clock = Callable[[], float]


class EndOfStream(CameraError):
    """A replay or video file that does not loop has delivered its last frame."""


class CameraStopped(EndOfStream):
    """No more frames because the stop event was set (shutdown), not because of a fault."""


@runtime_checkable
class Camera(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


class Pacer:
    """Spaces calls to :meth:`wait` ``1/fps`` apart on the monotonic clock.

    ``fps`` 0 means no pacing (as fast as possible).  A caller that falls more
    than one period behind (a slow consumer) starts a new schedule instead of
    catching up with a burst of frames.
    """

    def __init__(self, fps: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep):
        if fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def wait(self) -> None:
        if self.period == 0.0:
            return
        now = self._clock()
        if self._due is None or now - self._due > self.period:
            self._due = now
        elif now < self._due:
            self._sleep(self._due - now)
        self._due += self.period
