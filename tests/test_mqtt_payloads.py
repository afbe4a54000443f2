"""The topic layout and the JSON edgeknn publishes, built from the result dataclasses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeknn.config import MqttQosConfig
from edgeknn.errors import ConfigError
from edgeknn.mqtt import RecordingPublisher
from edgeknn.mqtt.payloads import (
    Announcer,
    DeviceState,
    Stats,
    classes_payload,
    detections_payload,
    iso_timestamp,
    prediction_payload,
    stats_payload,
)
from edgeknn.mqtt.topics import Topics
from edgeknn.results import Box, Detection, Frame, Neighbor, Prediction

FRAME = Frame(np.zeros((480, 640, 3), np.uint8), index=17, captured=0.0, timestamp=1714564800.1239)

PREDICTION = Prediction(
    label="Käse 🧀", confidence=0.666666, scores={"Käse 🧀": 0.666666, "cat": 0.333333},
    similarity=0.912345678, unknown=False,
    neighbors=(Neighbor("Käse 🧀", 0.912345678, 4), Neighbor("cat", 0.8, 9)),
)


def strict_json(data: bytes) -> dict:
    def refuse(name):
        raise AssertionError(f"{name} is not strict JSON")
    return json.loads(data.decode("utf-8"), parse_constant=refuse)


# -- topics ------------------------------------------------------------------------

def test_topics_default_to_edgeknn_slash_device_id():
    topics = Topics.for_device("kitchen")
    assert (topics.status, topics.prediction, topics.cmd_wildcard, topics.cmd_result) == (
        "edgeknn/kitchen/status", "edgeknn/kitchen/prediction",
        "edgeknn/kitchen/cmd/+", "edgeknn/kitchen/cmd/result")


def test_a_configured_base_topic_replaces_the_default():
    topics = Topics.for_device("kitchen", "home/cams/k1")
    assert topics.classes == "home/cams/k1/classes"
    assert topics.command("add") == "home/cams/k1/cmd/add"


def test_verb_from_topic_recognises_only_commands():
    topics = Topics("edgeknn/k")
    assert topics.verb_from_topic("edgeknn/k/cmd/add") == "add"
    assert topics.verb_from_topic("edgeknn/k/cmd/result") is None  # replies are not commands
    assert topics.verb_from_topic("edgeknn/k/cmd/add/x") is None
    assert topics.verb_from_topic("edgeknn/k/cmd/") is None
    assert topics.verb_from_topic("edgeknn/kk/cmd/add") is None
    assert topics.verb_from_topic("edgeknn/k/status") is None


@pytest.mark.parametrize("base, problem", [
    ("", "non-empty"), ("a//b", "empty topic level"), ("/a", "empty topic level"),
    ("a/", "empty topic level"), ("a/+/b", "'+' is an MQTT wildcard"), ("a/#", "'#'"),
    ("a/b\x00", "control character"), ("$SYS/x", "starts with '$'"),
])
def test_bad_base_topics_are_refused(base, problem):
    with pytest.raises(ConfigError, match="mqtt.base_topic") as info:
        Topics(base)
    assert problem in str(info.value)


@pytest.mark.parametrize("device_id", ["", "a/b", "a+", "#", "tab\there"])
def test_bad_device_ids_are_refused(device_id):
    with pytest.raises(ConfigError, match="device_id"):
        Topics.for_device(device_id)


# -- payloads ------------------------------------------------------------------------

def test_timestamps_are_iso_utc_with_milliseconds_and_z():
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert iso_timestamp(1714564800.1239) == "2024-05-01T12:00:00.123Z"


def test_prediction_payload_has_every_field_rounded():
    body = strict_json(prediction_payload(PREDICTION, FRAME, latency_ms=12.3456))
    assert body == {
        "label": "Käse 🧀", "confidence": 0.6667, "scores": {"Käse 🧀": 0.6667, "cat": 0.3333},
        "similarity": 0.9123, "unknown": False,
        "neighbors": [{"label": "Käse 🧀", "similarity": 0.9123, "example_id": 4},
                      {"label": "cat", "similarity": 0.8, "example_id": 9}],
        "frame": 17, "ts": "2024-05-01T12:00:00.123Z", "latency_ms": 12.35,
    }


def test_labels_are_sent_as_utf8_not_escaped():
    assert "Käse 🧀".encode() in prediction_payload(PREDICTION, FRAME, 1.0)


def test_an_empty_store_prediction_is_strict_json():
    empty = Prediction(label=None, confidence=0.0, scores={}, similarity=math.nan, unknown=True)
    body = strict_json(prediction_payload(empty, FRAME, latency_ms=math.inf))
    assert body["label"] is None and body["similarity"] is None and body["latency_ms"] is None
    assert body["unknown"] is True and body["neighbors"] == []


def test_classes_payload_is_counts_sorted_by_label():
    data = classes_payload({"zebra": 2, "Äpfel": np.int64(5), "cat": 1})
    assert list(strict_json(data)) == ["cat", "zebra", "Äpfel"]
    assert strict_json(data)["Äpfel"] == 5


def test_stats_payload():
    stats = Stats(fps=9.87654, dropped_frames=3, inference_ms_p50=4.4444, inference_ms_p95=8.1,
                  backend="edgetpu", store_size=120, uptime_s=3600.04)
    assert strict_json(stats_payload(stats)) == {
        "fps": 9.88, "dropped_frames": 3, "inference_ms_p50": 4.44, "inference_ms_p95": 8.1,
        "backend": "edgetpu", "store_size": 120, "uptime_s": 3600.0}


def test_detections_payload_with_and_without_a_classification():
    box = Box(0.1, 0.2, 0.512345, 0.9)
    plain = Detection("person", 0, 0.87654, box, box.to_pixels(640, 480))
    classified = Detection("dog", 17, 0.5, box, box.to_pixels(640, 480), classification=PREDICTION)
    body = strict_json(detections_payload([plain, classified], FRAME))
    assert body["frame"] == 17 and body["ts"] == "2024-05-01T12:00:00.123Z"
    assert body["image"] == {"width": 640, "height": 480}
    assert body["objects"][0] == {
        "label": "person", "score": 0.8765,
        "box": {"xmin": 0.1, "ymin": 0.2, "xmax": 0.5123, "ymax": 0.9},
        "box_px": [64, 96, 328, 432]}
    assert "class" not in body["objects"][0]
    assert body["objects"][1]["class"]["label"] == "Käse 🧀"
    assert body["objects"][1]["class"]["confidence"] == 0.6667


def test_no_detections_is_an_empty_list():
    assert strict_json(detections_payload([], FRAME))["objects"] == []


# -- the announcer ------------------------------------------------------------------

def test_announcer_retains_state_but_not_per_frame_messages():
    publisher = RecordingPublisher()
    qos = MqttQosConfig(prediction=0, classes=1, stats=0, snapshot=0, detections=2, status=1)
    announce = Announcer(publisher, Topics("edgeknn/k"), qos)
    announce.prediction(PREDICTION, FRAME, 5.0)
    announce.detections([], FRAME)
    announce.snapshot(b"\xff\xd8jpeg")
    announce.classes({"cat": 1})
    announce.stats(Stats(1, 0, 1, 1, "cpu", 1, 1))
    announce.state(DeviceState(camera="failed: no /dev/video0", backend="cpu",
                               broker_reconnects=2, status="camera: failed: no /dev/video0"))
    sent = [(m.topic, m.qos, m.retain) for m in publisher.messages]
    assert sent == [
        ("edgeknn/k/prediction", 0, False), ("edgeknn/k/detections", 2, False),
        ("edgeknn/k/snapshot", 0, False), ("edgeknn/k/classes", 1, True),
        ("edgeknn/k/stats", 0, True), ("edgeknn/k/state", 1, True)]
    assert publisher.last("edgeknn/k/snapshot").payload == b"\xff\xd8jpeg"
    assert strict_json(publisher.last("edgeknn/k/state").payload) == {
        "status": "camera: failed: no /dev/video0", "camera": "failed: no /dev/video0", "inference": "ok",
        "gpio": "ok", "backend": "cpu", "broker_reconnects": 2}
