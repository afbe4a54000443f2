"""Keep a camera delivering: close, back off, reopen, and say so.

:class:`RetryingCamera` wraps any camera.  When opening or reading raises
:class:`CameraError` it closes the camera, waits (exponential backoff with
jitter, on the stop event so shutdown is immediate) and reopens it, for as
long as it takes.  It reports each change of state through
``on_state(ok, message)`` so the daemon can publish it on the status topic:
ok when frames flow (the first frame, the first after an outage), not ok with
the first failure's message.
Out of :meth:`RetryingCamera.read` come only frames, :class:`EndOfStream`
(a replay that does not loop has ended) and :class:`CameraStopped` (the stop
event was set).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from edgeknn.cameras.base import Camera, CameraStopped, EndOfStream
from edgeknn.errors import CameraError

log = logging.getLogger(__name__)

OnState = Callable[[bool, str], None]


class Backoff:
    """Delays ``initial``, 2x, 4x, ... capped at ``maximum``; each shortened by up to ``jitter``.

    Jitter keeps a fleet of devices that lost the same network camera from
    retrying in lockstep.  Delays never exceed ``maximum``.
    """

    def __init__(
        self, initial: float, maximum: float, *, jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        base = min(self.maximum, self.initial * 2.0 ** min(self._attempt, 60))
        self._attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self._attempt = 0


def _ignore(ok: bool, message: str) -> None:
    pass


class RetryingCamera:
    def __init__(
        self, camera: Camera, *, stop: threading.Event, on_state: OnState = _ignore,
        backoff: Backoff, on_retry: Callable[[float], None] | None = None,
        log_interval: float = 60.0,
    ) -> None:
        """``on_retry(delay)`` is told before each wait to reopen; a recurring failure
        is logged when it first happens and then at most every ``log_interval`` s."""
        self.camera = camera
        self.name = camera.name
        self.stop = stop
        self.on_state = on_state
        self.backoff = backoff
        self.is_open = False
        self._is_ok: bool | None = None  # as last reported
        self._on_retry = on_retry
        self._log_interval = log_interval
        self._logged: dict[str, float] = {}  # message -> when it was last logged
        self._unlogged = 0

    def set_model_size(self, width: int, height: int) -> None:
        hint = getattr(self.camera, "set_model_size", None)
        if hint is not None:
            hint(width, height)

    def open(self) -> None:
        """Try once to open; a failure is reported, and :meth:`read` keeps retrying."""
        self._try_open()

    def read(self) -> np.ndarray:
        while True:
            if self.stop.is_set():
                raise CameraStopped(f"{self.name}: stopped")
            if not self.is_open:
                delay = self.backoff.next()
                if self._on_retry is not None:
                    self._on_retry(delay)
                log.debug("%s: reopening in %.1f s", self.name, delay)
                if self.stop.wait(delay):
                    raise CameraStopped(f"{self.name}: stopped")
                if not self._try_open():
                    continue
            try:
                frame = self.camera.read()
            except EndOfStream:
                raise
            except CameraError as exc:
                self._fail(str(exc))
                continue
            except Exception as exc:  # a driver or conversion fault: as good as a failed read
                log.exception("%s: unexpected error", self.name)
                self._fail(f"{self.name}: {type(exc).__name__}: {exc}")
                continue
            self.backoff.reset()
            self._report(True, f"{self.name}: delivering frames")
            return frame

    def close(self) -> None:
        self.is_open = False
        self.camera.close()

    def _try_open(self) -> bool:
        try:
            self.camera.open()
        except CameraError as exc:
            self._fail(str(exc))
            return False
        self.is_open = True
        return True

    def _fail(self, message: str) -> None:
        self._warn(message)
        self.is_open = False
        # Reported before closing: closing a stalled camera may itself hang.
        self._report(False, message)
        try:
            self.camera.close()
        except CameraError as exc:
            log.debug("%s: close after failure: %s", self.name, exc)

    def _warn(self, message: str) -> None:
        # One bad file in a replay folder fails every few frames: say so once a
        # minute with a count, not at every failure.
        now = time.monotonic()
        if now - self._logged.get(message, float("-inf")) < self._log_interval:
            self._unlogged += 1
            return
        self._logged[message] = now
        more, self._unlogged = self._unlogged, 0
        log.warning("%s%s", message, f" ({more} more failures since the last report)" if more else "")

    def _report(self, ok: bool, message: str) -> None:
        # Only changes: a camera that stays unplugged is reported once (with the
        # first failure, the cause), not at every attempt; it is ok again when a
        # frame arrives, not merely when it opens.
        if ok != self._is_ok:
            self._is_ok = ok
            self.on_state(ok, message)
