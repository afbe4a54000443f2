"""Frames for teaching and snapshots, never older than a stated age.

The frame slot keeps the last frame the camera delivered, however old: with
a camera read that hangs, an ``add`` would teach, and a ``snapshot`` would
send, a frame from before the hang, and both would answer ok.
:class:`FreshFrames` stands between the slot and the teacher and refuses
such a frame with a :class:`~edgeknn.errors.CameraError` that says how old
it is.
"""

from __future__ import annotations

import time

from edgeknn.errors import CameraError
from edgeknn.results import Frame
from edgeknn.service.engine import FrameSource
from edgeknn.service.health import Clock


class FreshFrames:
    """``latest`` and ``newer_than`` of ``frames``, for frames captured at most ``max_age`` s ago."""

    def __init__(self, frames: FrameSource, max_age: float, *, clock: Clock = time.monotonic) -> None:
        self._frames = frames
        self.max_age = max_age
        self._clock = clock

    @property
    def latest(self) -> Frame | None:
        frame = self._frames.latest
        if frame is not None:
            self._refuse_if_stale(frame)
        return frame

    def newer_than(self, index: int, timeout: float) -> Frame | None:
        """The newest fresh frame after ``index``, waiting up to ``timeout`` s for one; else None."""
        deadline = self._clock() + timeout
        while True:
            frame = self._frames.newer_than(index, max(0.0, deadline - self._clock()))
            if frame is None or self._age(frame) <= self.max_age:
                return frame
            index = frame.index  # a stale frame: wait for one after it
            if self._clock() >= deadline:
                return None

    def _age(self, frame: Frame) -> float:
        return self._clock() - frame.captured

    def _refuse_if_stale(self, frame: Frame) -> None:
        age = self._age(frame)
        if age > self.max_age:
            raise CameraError(
                f"the newest camera frame is {age:.0f} s old (older than {self.max_age:g} s): "
                "the camera is not delivering; see the state topic"
            )
