"""The service's health, in one place: what the state topic, ``STATUS=`` and the watchdog say.

Three parts can fail: the camera, inference (the embedder) and the GPIO
panel.  Each is ``ok`` or ``failed: <why>``; the state topic shows the first
failed one as ``camera: failed: …``, ``inference: failed: …`` or
``gpio: failed: …``.

The rules, each in one method below:

* **A stall is the time since the last frame.**  Whatever the camera does —
  refuses to open, errors on every read, or hangs inside a driver call — no
  frame for ``stall_after`` seconds is a camera failure.  So is a run of
  ``fail_after`` reported failures without a frame in between.
* **Hysteresis.**  A part that failed is ok again only after it has worked for
  ``recover_after`` seconds without a failure, so one bad file in a replay
  folder (a failure, a reopen, frames again) does not flap the state.
* **The watchdog** (``should_feed_watchdog``) is fed only while frames are
  being processed, or while the camera is in a reported failed state that is
  being retried (a reopen is due, or was tried, recently).  A camera hung in a
  driver call, or a loop whose every inference fails, stops the pings, and
  systemd restarts the service after ``WatchdogSec=``.
* **Inference gives up** after ``max_inference_failures`` failures in a row
  (``inference_exhausted``): the daemon then falls back to the CPU model, or
  exits so that systemd restarts it.
* **fps** is the rate of processed frames over the last ``fps_window`` seconds,
  0 when nothing is processed.

Pure: no threads, no I/O; the clock is injected.  Thread-safe: the capture
thread, the processing loop and the main thread all report here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
OK = "ok"


@dataclass(frozen=True)
class HealthPolicy:
    stall_after: float = 5.0  # s without a frame: the camera has failed
    fail_after: int = 3  # reported failures in a row: the part has failed
    recover_after: float = 3.0  # s of working, without a failure, before a failed part is ok again
    max_inference_failures: int = 10  # inference failures in a row before giving up on the model
    fps_window: float = 10.0  # s over which fps is measured
    retry_grace: float = 10.0  # s a camera retry (reopen and first read) may take before it counts as hung


@dataclass(frozen=True)
class PartState:
    """One part's health as the state topic shows it."""

    failed: bool = False
    reason: str = ""

    def __str__(self) -> str:
        return f"failed: {self.reason}" if self.failed else OK


@dataclass(frozen=True)
class Change:
    """A part whose state changed: for one log line per change, not one per failure."""

    part: str
    state: PartState


class _Part:
    """Failures in a row, the last reason, and the hysteresis of one part."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed = False
        self.reason = ""
        self.in_a_row = 0
        self.last_failure = float("-inf")
        self.working_since: float | None = None  # start of the current stretch without failures

    def fail(self, reason: str, now: float) -> None:
        self.in_a_row += 1
        self.reason = reason
        self.last_failure = now
        self.working_since = None

    def work(self, now: float) -> None:
        self.in_a_row = 0
        if self.working_since is None:
            self.working_since = now

    @property
    def state(self) -> PartState:
        return PartState(self.failed, self.reason if self.failed else "")


class Health:
    def __init__(self, policy: HealthPolicy | None = None, *, clock: Clock = time.monotonic) -> None:
        self.policy = policy or HealthPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._started = now
        self._camera = _Part("camera")
        self._inference = _Part("inference")
        self._gpio = _Part("gpio")
        self._last_frame: float | None = None  # when the camera last delivered a frame
        self._last_processed = now  # start counts as progress: the camera gets stall_after to deliver
        self._camera_retry_until = float("-inf")  # a reopen is due (or was tried) until then
        self._processed: deque[float] = deque()
        self.frames_processed = 0
        self.inference_failures = 0

    # ----- reports (any thread) --------------------------------------------------

    def begin(self) -> None:
        """The service is up (READY=1): the camera gets ``stall_after`` from now to deliver,
        however long loading the models took."""
        with self._lock:
            self._started = self._last_processed = self._clock()

    def frame_arrived(self, at: float | None = None) -> None:
        """The camera delivered a frame (``at``: when it was captured, on this clock)."""
        with self._lock:
            at = self._clock() if at is None else at
            if self._last_frame is None or at > self._last_frame:
                self._last_frame = at
                self._camera.work(at)

    def camera_failed(self, reason: str) -> None:
        """Opening or reading failed; the camera is being retried."""
        with self._lock:
            now = self._clock()
            self._camera.fail(reason, now)
            self._camera_retry_until = max(self._camera_retry_until, now + self.policy.retry_grace)

    def camera_retrying(self, delay: float) -> None:
        """The next reopen is ``delay`` seconds away."""
        with self._lock:
            self._camera_retry_until = self._clock() + delay + self.policy.retry_grace

    def frame_processed(self) -> None:
        with self._lock:
            now = self._clock()
            self.frames_processed += 1
            self._last_processed = now
            self._processed.append(now)
            self._trim(now)
            self._inference.work(now)

    def inference_failed(self, reason: str) -> None:
        with self._lock:
            self.inference_failures += 1
            self._inference.fail(reason, self._clock())

    def gpio_failed(self, reason: str) -> None:
        """The buttons and LEDs could not be set up; the service runs without them."""
        with self._lock:
            self._gpio.fail(reason, self._clock())
            self._gpio.failed = True

    def inference_restarted(self) -> None:
        """A new model (the CPU fallback) replaced the failing one: count afresh."""
        with self._lock:
            self._inference.in_a_row = 0

    # ----- decisions -------------------------------------------------------------

    def update(self) -> list[Change]:
        """Apply the failure and recovery rules now; the parts whose state changed."""
        with self._lock:
            now = self._clock()
            changes = []
            for part, failing in ((self._camera, self._camera_failing(now)),
                                  (self._inference, self._part_failing(self._inference))):
                was = part.failed
                if failing:
                    part.failed = True
                elif part.failed and part.working_since is not None and \
                        now - part.working_since >= self.policy.recover_after:
                    part.failed = False
                if part.failed != was:
                    changes.append(Change(part.name, part.state))
            return changes

    def _camera_failing(self, now: float) -> bool:
        last = self._last_frame if self._last_frame is not None else self._started
        if now - last >= self.policy.stall_after:
            if not self._camera.reason or self._camera.last_failure < last:
                self._camera.reason = f"no frame for over {self.policy.stall_after:g} s (the camera is not delivering)"
            return True
        return self._part_failing(self._camera)

    def _part_failing(self, part: _Part) -> bool:
        return part.in_a_row >= self.policy.fail_after

    def inference_exhausted(self) -> str | None:
        """Why to give up on the model: ``max_inference_failures`` failures in a row, else None."""
        with self._lock:
            part = self._inference
            if part.in_a_row >= self.policy.max_inference_failures:
                return f"{part.in_a_row} inference failures in a row, the last: {part.reason}"
            return None

    def is_processing(self) -> bool:
        """Frames are being processed: one was within ``stall_after`` and inference is not
        failing (what /healthz answers)."""
        with self._lock:
            return self._is_processing(self._clock())

    def _is_processing(self, now: float) -> bool:
        return now - self._last_processed < self.policy.stall_after and self._inference.in_a_row == 0

    def should_feed_watchdog(self) -> bool:
        """Frames are being processed, or a camera that reported failing is being retried."""
        with self._lock:
            now = self._clock()
            if self._is_processing(now):
                return True
            return self._camera.in_a_row > 0 and now < self._camera_retry_until

    # ----- what it says ------------------------------------------------------------

    def parts(self) -> dict[str, PartState]:
        with self._lock:
            return {p.name: p.state for p in (self._camera, self._inference, self._gpio)}

    def summary(self) -> str:
        """"ok", or the first failed part: "camera: failed: …"."""
        for name, state in self.parts().items():
            if state.failed:
                return f"{name}: {state}"
        return OK

    def fps(self) -> float:
        """Frames processed per second over the last ``fps_window`` seconds."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            window = min(self.policy.fps_window, now - self._started)
            return len(self._processed) / window if window > 0 else 0.0

    def frame_age(self) -> float | None:
        """Seconds since the camera last delivered a frame; None if it never has."""
        with self._lock:
            return None if self._last_frame is None else self._clock() - self._last_frame

    def status_line(self, backend: str, examples: int) -> str:
        """One line for ``systemctl status`` (``STATUS=``)."""
        return f"{self.fps():.1f} fps on {backend}, {examples} examples; {self.summary()}"

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.fps_window
        while self._processed and self._processed[0] <= horizon:
            self._processed.popleft()
