"""A camera that needs no hardware: a deterministic moving pattern, for demos and tests."""

from __future__ import annotations

import time

import numpy as np

from edgeknn.cameras.base import Clock, Pacer, Sleep
from edgeknn.errors import CameraError


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of the pattern: drifting colour gradients and a bouncing white square.

    The same index always gives the same image, so tests can compare frames.
    """
    y = np.arange(height, dtype=np.int64)[:, None]
    x = np.arange(width, dtype=np.int64)[None, :]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (x * 256 // width + index * 3) % 256
    frame[..., 1] = (y * 256 // height + index * 5) % 256
    frame[..., 2] = ((x + y) * 128 // (width + height) + 64) % 256
    size = max(2, min(width, height) // 5)
    px = _bounce(index * 7, width - size)
    py = _bounce(index * 5, height - size)
    frame[py:py + size, px:px + size] = 255
    return frame


def _bounce(travelled: int, span: int) -> int:
    """Position after travelling back and forth over 0..span."""
    if span <= 0:
        return 0
    p = travelled % (2 * span)
    return p if p <= span else 2 * span - p


class SyntheticCamera:
    """Delivers :func:`synthetic_frame` 0, 1, 2, ... at ``fps`` (0 = as fast as asked)."""

    def __init__(
        self, width: int, height: int, fps: float,
        *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
    ) -> None:
        if width < 2 or height < 2:
            raise CameraError(f"synthetic camera size {width}x{height} is too small")
        self.name = f"synthetic {width}x{height}"
        self.width, self.height = width, height
        self._pacer = Pacer(fps, clock, sleep)
        self._index: int | None = None

    def open(self) -> None:
        self._index = 0
        self._pacer.reset()

    def read(self) -> np.ndarray:
        if self._index is None:
            raise CameraError(f"{self.name}: read before open")
        frame = synthetic_frame(self._index, self.width, self.height)
        self._index += 1
        self._pacer.wait()
        return frame

    def close(self) -> None:
        self._index = None
