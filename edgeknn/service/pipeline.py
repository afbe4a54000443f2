"""The frame pipeline: capture apart from inference, newest frame only.

    camera --(capture thread)--> FrameSlot --(processing loop)--> embed, predict,
    smooth, publish; detect at its own rate

The slot holds one frame: a frame not taken before the next arrives is
dropped and counted, so a slow model never builds a queue and the published
prediction is always about the present.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from edgeknn.cameras.base import Camera, EndOfStream
from edgeknn.classify import Smoother
from edgeknn.config import ClassifierConfig, PipelineConfig
from edgeknn.errors import EdgeKnnError
from edgeknn.results import Frame, Prediction
from edgeknn.service.engine import Engine

log = logging.getLogger(__name__)


class FrameSlot:
    """The newest frame, with a count of frames dropped because a newer one came first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken_index = -1
        self.captured = 0
        self.dropped = 0
        self.ended = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None and self._frame.index > self._taken_index:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self._cond.notify_all()

    def end(self) -> None:
        """The source has no more frames (a replay that does not loop)."""
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout``; None if none came."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self.ended or (self._frame is not None and self._frame.index > self._taken_index),
                timeout,
            )
            if not ready or self._frame is None or self._frame.index <= self._taken_index:
                return None
            self._taken_index = self._frame.index
            return self._frame

    def newer_than(self, index: int, timeout: float) -> Frame | None:
        """The newest frame with a higher index than ``index`` (without taking it)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.ended or (self._frame is not None and self._frame.index > index), timeout
            )
            frame = self._frame
            return frame if frame is not None and frame.index > index else None

    @property
    def latest(self) -> Frame | None:
        with self._cond:
            return self._frame


class CaptureThread:
    """Opens a camera and reads it into the slot until stopped (or the replay ends).

    The camera is a RetryingCamera: opening and reading never raise but for the
    end of a stream; failures are retried with backoff and reported by it."""

    def __init__(self, camera: Camera, slot: FrameSlot, stop: threading.Event) -> None:
        self._camera = camera
        self._slot = slot
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.crashed: BaseException | None = None  # set when the thread died of a bug

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        index = 0
        try:
            self._camera.open()
            while not self._stop.is_set():
                try:
                    image = self._camera.read()
                except EndOfStream:  # also when stopped (CameraStopped)
                    log.info("camera: no more frames after %d", index)
                    break
                self._slot.put(Frame(image, index, time.monotonic(), time.time()))
                index += 1
        except Exception as exc:  # a bug (camera errors are retried below us): stop, loudly
            log.exception("capture crashed")
            self.crashed = exc
        finally:
            self._slot.end()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class PublishGate:
    """Publish when the smoothed label changes, else at most every ``interval`` s (0: always)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last_label: object = object()  # differs from every label, None included
        self._last_time = float("-inf")

    def should_publish(self, label: str | None) -> bool:
        now = self._clock()
        if label != self._last_label or self._interval == 0 or now - self._last_time >= self._interval:
            self._last_label, self._last_time = label, now
            return True
        return False


class Timings:
    """Recent inference times and processed-frame times, for the stats topic and the web
    page: recorded by the processing loop, read from other threads (hence the lock)."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self._inference_ms: deque[float] = deque(maxlen=window)
        self._done: deque[float] = deque(maxlen=window)

    def record(self, inference_ms: float, at: float) -> None:
        with self._lock:
            self._inference_ms.append(inference_ms)
            self._done.append(at)

    def percentile(self, q: float) -> float:
        with self._lock:
            times = list(self._inference_ms)
        return float(np.percentile(times, q)) if times else 0.0

    def fps(self) -> float:
        with self._lock:
            done = list(self._done)
        if len(done) < 2:
            return 0.0
        span = done[-1] - done[0]
        return (len(done) - 1) / span if span > 0 else 0.0


def smoothed(raw: Prediction, label: str | None) -> Prediction:
    """The prediction to publish: the smoothed label, its share in this frame's scores."""
    if label is None:
        return replace(raw, unknown=True)
    return replace(raw, label=label, unknown=False, confidence=raw.scores.get(label, 0.0))


@dataclass(frozen=True)
class Processed:
    """What one processing step made of a frame."""

    frame: Frame
    embedding: np.ndarray
    prediction: Prediction  # after smoothing
    published: bool
    inference_ms: float = 0.0  # embedding + KNN


class ErrorLog:
    """Logs a recurring error when it first happens and then at most every ``interval``
    seconds with a count, so a fault on every frame does not flood the journal."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.count = 0

    def error(self, key: str, message: str, *, trace: bool = False) -> None:
        self.count += 1
        now = self._clock()
        if now - self._last.get(key, float("-inf")) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({more} more since the last report)" if more else ""
        log.error("%s%s", message, suffix, exc_info=trace)


class FrameOutcomes(Protocol):
    """Where the loop reports each frame (service.health.Health)."""

    def frame_processed(self) -> None: ...

    def inference_failed(self, reason: str) -> None: ...


class Processor:
    """Embeds, predicts, smooths and publishes one frame at a time.

    ``engine`` is the models and the store (service/engine.py, which also
    says which thread may call what); ``classifier.smoothing`` and
    ``pipeline.prediction_interval`` are read from the config sections given;
    ``announce`` publishes a prediction; ``after_frame`` hooks (detector, LEDs)
    get every processed frame.  Other threads change it only through
    :meth:`reset` and :meth:`configure`, which the processing thread applies
    between frames.  ``clock`` times everything (publishing interval, latency,
    inference time, error reports).
    """

    def __init__(self, engine: Engine, *, classifier: ClassifierConfig, pipeline: PipelineConfig,
                 announce: Callable[[Prediction, Frame, float], None],
                 after_frame: list[Callable[[Processed], None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._smoother = Smoother(classifier.smoothing)
        self._gate = PublishGate(pipeline.prediction_interval, clock)
        self._announce = announce
        self._after = after_frame or []
        self._clock = clock
        self._pending_lock = threading.Lock()
        self._pending_reset = False
        self._pending_settings: tuple[ClassifierConfig, PipelineConfig] | None = None
        self.errors = ErrorLog(clock=clock)
        self.timings = Timings()
        self.processed = 0

    def reset(self) -> None:
        """Forget the smoothing history (the store changed under it); any thread."""
        with self._pending_lock:
            self._pending_reset = True

    def configure(self, classifier: ClassifierConfig, pipeline: PipelineConfig) -> None:
        """New smoothing window and publishing interval (SIGHUP); any thread."""
        with self._pending_lock:
            self._pending_settings = (classifier, pipeline)

    def _apply_pending(self) -> None:
        with self._pending_lock:
            reset, self._pending_reset = self._pending_reset, False
            settings, self._pending_settings = self._pending_settings, None
        if settings is not None:
            classifier, pipeline = settings
            self._smoother = Smoother(classifier.smoothing)
            self._gate = PublishGate(pipeline.prediction_interval, self._clock)
        elif reset:
            self._smoother.reset()

    def process(self, frame: Frame) -> Processed:
        self._apply_pending()
        started = self._clock()
        embedding, raw = self._engine.embed_and_predict(frame.image)
        inference_ms = (self._clock() - started) * 1e3
        self.timings.record(inference_ms, self._clock())
        label = None if raw.unknown or raw.label is None else raw.label
        shown = smoothed(raw, self._smoother.push(label))
        published = self._gate.should_publish(None if shown.unknown else shown.label)
        if published:
            self._announce(shown, frame, (self._clock() - frame.captured) * 1e3)
        done = Processed(frame, embedding, shown, published, inference_ms)
        self.processed += 1
        for hook in self._after:
            # Hooks drive outputs beside the prediction (detector, LEDs): one failing
            # must not stop classification, so even a bug is reported (with its
            # trace, at most once a minute) and counted, not raised.
            try:
                hook(done)
            except Exception as exc:
                name = getattr(hook, "__qualname__", "hook")
                self.errors.error(name, f"frame {frame.index}: {name}: {exc}",
                                  trace=not isinstance(exc, EdgeKnnError))
        return done

    def run(self, slot: FrameSlot, stop: threading.Event, health: FrameOutcomes) -> None:
        """Process frames until ``stop`` is set or the source ends, telling ``health`` how each went."""
        while not stop.is_set():
            frame = slot.take(timeout=0.5)
            if frame is None:
                if slot.ended:
                    log.info("pipeline: the camera has no more frames")
                    return
                continue
            try:
                self.process(frame)
            except EdgeKnnError as exc:
                # Reported and counted, not fatal; health decides when failures
                # in a row mean the model has to go (service/health.py).
                health.inference_failed(str(exc))
                self.errors.error(type(exc).__name__, f"frame {frame.index}: {exc}")
            else:
                health.frame_processed()
