"""What edgeknn publishes: JSON built from the result dataclasses, and where it goes.

The builders are pure functions returning UTF-8 JSON bytes.  Floats are rounded
(4 decimals for shares and similarities, 2 for milliseconds and rates) and
non-finite ones become ``null``, so every payload is strict JSON that Home
Assistant templates and Node-RED parse.  Labels may be any Unicode and are sent
as is (not ``\\u`` escaped).  Timestamps are ISO 8601 UTC with milliseconds and
``Z``.

:class:`Announcer` sends each payload on its topic with its QoS and retain flag,
through any :class:`~edgeknn.mqtt.Publisher`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edgeknn.mqtt import Publisher
from edgeknn.mqtt.topics import Topics
from edgeknn.results import Detection, Frame, Prediction

if TYPE_CHECKING:  # the config imports this package's rules, so not at run time
    from edgeknn.config import MqttQosConfig


@dataclass(frozen=True)
class Stats:
    """Throughput and health figures, published retained on ``<base>/stats``."""

    fps: float
    dropped_frames: int
    inference_ms_p50: float
    inference_ms_p95: float
    backend: str  # "edgetpu" or "cpu"
    store_size: int  # examples in the store
    uptime_s: float
    # What classifies, as in effect: method, views and their cost, feature
    # transform, and the head's rows and fit time (see Daemon.stats).
    classifier: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceState:
    """What works and what does not, published retained on ``<base>/state``."""

    camera: str = "ok"  # "ok" or "failed: <reason>"
    backend: str = "cpu"
    broker_reconnects: int = 0
    inference: str = "ok"  # "ok" or "failed: <reason>"
    gpio: str = "ok"  # "ok", "off" (not configured) or "failed: <reason>"
    status: str = "ok"  # "ok" or the first failed part: "camera: failed: <reason>"


def to_json(obj: object) -> bytes:
    """Strict JSON as UTF-8 bytes; labels stay readable, NaN is refused."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8; escape it instead
        return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def rounded(value: float, digits: int = 4) -> float | None:
    """A float rounded for publishing, or None if it is NaN or infinite."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def iso_timestamp(seconds: float) -> str:
    """Unix time as ISO 8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prediction_dict(prediction: Prediction) -> dict[str, object]:
    """A prediction as a JSON-ready dict (also used for a detection's "class")."""
    return {
        "label": prediction.label,
        "confidence": rounded(prediction.confidence),
        "scores": {label: rounded(share) for label, share in prediction.scores.items()},
        "similarity": rounded(prediction.similarity),
        "unknown": bool(prediction.unknown),
        "neighbors": [
            {"label": n.label, "similarity": rounded(n.similarity), "example_id": int(n.example_id)}
            for n in prediction.neighbors
        ],
    }


def prediction_payload(prediction: Prediction, frame: Frame, latency_ms: float) -> bytes:
    body = prediction_dict(prediction)
    body["frame"] = frame.index
    body["ts"] = iso_timestamp(frame.timestamp)
    body["latency_ms"] = rounded(latency_ms, 2)
    return to_json(body)


def classes_payload(counts: Mapping[str, int]) -> bytes:
    """``{label: example_count}``, sorted by label so retained values compare equal."""
    return to_json({label: int(counts[label]) for label in sorted(counts)})


def stats_payload(stats: Stats) -> bytes:
    return to_json({
        "fps": rounded(stats.fps, 2),
        "dropped_frames": int(stats.dropped_frames),
        "inference_ms_p50": rounded(stats.inference_ms_p50, 2),
        "inference_ms_p95": rounded(stats.inference_ms_p95, 2),
        "backend": stats.backend,
        "store_size": int(stats.store_size),
        "uptime_s": rounded(stats.uptime_s, 1),
        **({"classifier": stats.classifier} if stats.classifier else {}),
    })


def state_payload(state: DeviceState) -> bytes:
    return to_json({
        "status": state.status,
        "camera": state.camera,
        "inference": state.inference,
        "gpio": state.gpio,
        "backend": state.backend,
        "broker_reconnects": int(state.broker_reconnects),
    })


UNKNOWN_EVENT = "unknown"  # the event type when the camera stops recognising a class


def event_payload(label: str | None, confidence: float) -> bytes:
    """``<base>/event``: the recognised label changed (None: to unknown)."""
    return to_json({"event_type": UNKNOWN_EVENT if label is None else label, "confidence": rounded(confidence)})


def detection_dict(detection: Detection) -> dict[str, object]:
    box = detection.box
    body: dict[str, object] = {
        "label": detection.label,
        "score": rounded(detection.score),
        "box": {
            "xmin": rounded(box.xmin), "ymin": rounded(box.ymin),
            "xmax": rounded(box.xmax), "ymax": rounded(box.ymax),
        },
        "box_px": [int(v) for v in detection.box_px],
    }
    if detection.classification is not None:
        body["class"] = prediction_dict(detection.classification)
    return body


def detections_payload(detections: Iterable[Detection], frame: Frame) -> bytes:
    return to_json({
        "frame": frame.index,
        "ts": iso_timestamp(frame.timestamp),
        "image": {"width": frame.width, "height": frame.height},
        "objects": [detection_dict(d) for d in detections],
    })


class Announcer:
    """Publishes each kind of payload on its topic, with its QoS and retain flag.

    Retained: classes, stats and state (a subscriber arriving later sees the
    latest).  Not retained: predictions, detections and snapshots, which are
    stale the moment they are sent.  ``<base>/status`` belongs to MqttClient,
    which also sets it as the Last Will.
    """

    def __init__(self, publisher: Publisher, topics: Topics, qos: MqttQosConfig | None = None) -> None:
        if qos is None:  # the [mqtt.qos] defaults; imported here, as the config imports this package
            from edgeknn.config import MqttQosConfig

            qos = MqttQosConfig()
        self._publisher = publisher
        self._topics = topics
        self._qos = qos
        self._recognised: str | None = None

    def recognised(self, prediction: Prediction) -> bool:
        """Publish an event if the (smoothed) label changed since the last call; say if it did."""
        label = None if prediction.unknown else prediction.label
        if label == self._recognised:
            return False
        self._recognised = label
        self._publisher.publish(self._topics.event, event_payload(label, prediction.confidence),
                                self._qos.prediction, False)
        return True

    def prediction(self, prediction: Prediction, frame: Frame, latency_ms: float) -> None:
        payload = prediction_payload(prediction, frame, latency_ms)
        self._publisher.publish(self._topics.prediction, payload, self._qos.prediction, False)

    def detections(self, detections: Iterable[Detection], frame: Frame) -> None:
        self._publisher.publish(self._topics.detections, detections_payload(detections, frame),
                                self._qos.detections, False)

    def snapshot(self, jpeg: bytes) -> None:
        self._publisher.publish(self._topics.snapshot, jpeg, self._qos.snapshot, False)

    def classes(self, counts: Mapping[str, int]) -> None:
        payload = classes_payload(counts)
        self._publisher.publish(self._topics.classes, payload, self._qos.classes, True)

    def stats(self, stats: Stats) -> None:
        self._publisher.publish(self._topics.stats, stats_payload(stats), self._qos.stats, True)

    def state(self, state: DeviceState) -> None:
        self._publisher.publish(self._topics.state, state_payload(state), self._qos.status, True)
