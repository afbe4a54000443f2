"""The detector inside the processing loop: at its own rate, detect, classify, publish.

It runs on every n-th processed frame and at most ``max_rate`` times a second,
so it takes a bounded share of the loop and never starves the embedder.
Frames with detections are published on ``<base>/detections``; when objects
stop being seen, one message with an empty ``objects`` list says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edgeknn.config import DetectorConfig
from edgeknn.errors import DetectorError, ImageError
from edgeknn.images import crop_region
from edgeknn.mqtt.payloads import Announcer
from edgeknn.results import Detection
from edgeknn.service.engine import Engine
from edgeknn.service.pipeline import Processed

log = logging.getLogger(__name__)


class RateGate:
    """Every n-th call, and no more often than ``max_rate`` per second (0: no limit)."""

    def __init__(self, every_n: int, max_rate: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._every_n = every_n
        self._period = 1.0 / max_rate if max_rate > 0 else 0.0
        self._clock = clock
        self._count = 0
        self._last = float("-inf")

    def due(self) -> bool:
        self._count += 1
        if (self._count - 1) % self._every_n:
            return False
        now = self._clock()
        if now - self._last < self._period:
            return False
        self._last = now
        return True


def largest(detections: list[Detection]) -> Detection | None:
    return max(detections, key=lambda d: d.box.area, default=None)


class DetectionStage:
    """Runs the engine's detector from the processing loop; see the module docstring.

    ``config`` is the ``[detector]`` section: how often to run
    (``every_n_frames``, ``max_rate``) and, with ``classify_objects``, each
    object's crop is also embedded and classified against the store (when it
    holds examples).
    """

    def __init__(self, engine: Engine, announcer: Announcer, config: DetectorConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if engine.detector is None:
            raise DetectorError("the detection stage needs an engine with a detector")
        self._engine = engine
        self._announcer = announcer
        self._classify_objects = config.classify_objects
        self._gate = RateGate(config.every_n_frames, config.max_rate, clock)
        self._clock = clock
        self._saw_objects = False
        self.runs = 0
        self.seconds = 0.0
        self.latest: list[Detection] = []  # what the last run found, for the web page

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._engine.detect(image)
        if self._classify_objects and self._engine.store.counts():
            found = [self._classified(image, d) for d in found]
        return found

    def _classified(self, image: np.ndarray, detection: Detection) -> Detection:
        try:
            crop = crop_region(image, detection.box_px)
        except ImageError:  # a box thinner than a pixel: publish it, unclassified
            return detection
        _, prediction = self._engine.embed_and_predict(crop)
        return replace(detection, classification=prediction)

    def on_frame(self, processed: Processed) -> None:
        """The processing loop's hook: detect when due, publish what changed."""
        if not self._gate.due():
            return
        started = self._clock()
        frame = processed.frame
        found = self.detect(frame.image)
        if found or self._saw_objects:
            self._announcer.detections(found, frame)
        self._saw_objects = bool(found)
        self.latest = found
        # runs and seconds: the detector's share of the loop, publishing included
        self.runs += 1
        self.seconds += self._clock() - started

    def largest_object(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The pixel box of the largest detected object."""
        best = largest(self._engine.detect(image))
        return best.box_px if best else None
