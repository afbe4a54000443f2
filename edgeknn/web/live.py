"""What the page shows live: the newest prediction and detections, and the service's status.

:class:`LiveView` is a processing-loop hook: per frame it keeps a reference
to the prediction and bumps a counter (no encoding, no I/O), so it costs the
pipeline nothing measurable.  Readers (the server-sent events) poll it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeknn.mqtt.payloads import Stats, detection_dict, prediction_dict, rounded
from edgeknn.results import Detection, Prediction

if TYPE_CHECKING:
    from edgeknn.service.pipeline import Processed



@dataclass(frozen=True)
class Status:
    """The status panel and ``/api/stats``."""

    version: str
    device: str
    backend: str  # "edgetpu" or "cpu"
    camera: str  # "ok", "starting" or "failed: <reason>"
    mqtt: str  # "connected", "disconnected" or "disabled"
    detector: bool
    stats: Stats
    frames_processed: int

    def as_dict(self) -> dict[str, object]:
        s = self.stats
        return {
            "version": self.version, "device": self.device, "backend": self.backend,
            "camera": self.camera, "mqtt": self.mqtt, "detector": self.detector,
            "fps": rounded(s.fps, 2), "inference_ms_p50": rounded(s.inference_ms_p50, 2),
            "inference_ms_p95": rounded(s.inference_ms_p95, 2), "store_size": s.store_size,
            "dropped_frames": s.dropped_frames, "frames_processed": self.frames_processed,
            "uptime_s": rounded(s.uptime_s, 1),
        }


@dataclass(frozen=True)
class Moment:
    """The newest processed frame, as the page sees it."""

    seq: int  # bumps with every processed frame
    frame: int
    prediction: Prediction
    detections: tuple[Detection, ...]
    processed_at: float  # monotonic

    def as_dict(self) -> dict[str, object]:
        body = prediction_dict(self.prediction)
        body["frame"] = self.frame
        body["detections"] = [detection_dict(d) for d in self.detections]
        return body


class LiveView:
    """Keeps the newest :class:`Moment`; ``detections`` reads the detector's newest boxes
    (None when the detector is off); ``observe`` records each inference time (ms)."""

    def __init__(self, *, detections: Callable[[], list[Detection]] | None = None,
                 observe: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._detections = detections
        self._observe = observe
        self._clock = clock
        self._lock = threading.Lock()
        self._moment: Moment | None = None
        self._seq = 0

    def on_frame(self, done: Processed) -> None:
        """The processing loop's hook."""
        if self._observe is not None:
            self._observe(done.inference_ms)
        found = tuple(self._detections()) if self._detections is not None else ()
        with self._lock:
            self._seq += 1
            self._moment = Moment(self._seq, done.frame.index, done.prediction, found, self._clock())

    @property
    def moment(self) -> Moment | None:
        with self._lock:
            return self._moment

