"""The detection stage: when it detects, what it publishes, and classifying the objects.

A :class:`FakeDetector` that sees what the test says, a :class:`FakeEmbedder`
over a real store, a real :class:`Announcer` on a :class:`RecordingPublisher`,
and a fake clock.  One test runs the real pets detector on a real photo.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import IMAGES, MODELS

from edgeknn.config import ClassifierConfig, DetectorConfig, MqttQosConfig
from edgeknn.errors import DetectorError
from edgeknn.images import load_image
from edgeknn.mqtt import RecordingPublisher
from edgeknn.mqtt.payloads import Announcer
from edgeknn.mqtt.topics import Topics
from edgeknn.results import Frame, Prediction
from edgeknn.service.detection_stage import DetectionStage, RateGate
from edgeknn.service.engine import Engine
from edgeknn.service.pipeline import Processed
from edgeknn.vision.detector import open_detector
from edgeknn.vision.fake import FakeDetector

TOPICS = Topics.for_device("testpi")
RED, BLUE = (200, 30, 30), (30, 30, 200)


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def picture(*patches: tuple[tuple[int, int, int, int], tuple[int, int, int]]) -> np.ndarray:
    """A grey 80x60 frame with coloured rectangles (x0, y0, x1, y1) painted on it."""
    image = np.full((60, 80, 3), 128, dtype=np.uint8)
    for (x0, y0, x1, y1), rgb in patches:
        image[y0:y1, x0:x1] = rgb
    return image


def processed(image: np.ndarray, index: int = 0) -> Processed:
    frame = Frame(image, index, 0.0, 1.7e9)
    return Processed(frame, np.zeros(1, np.float32), Prediction(None, 0.0, {}, 0.0, True), False)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def published():
    return RecordingPublisher()


@pytest.fixture
def detector():
    return FakeDetector()


@pytest.fixture
def engine(embedder, store, detector):
    return Engine(embedder, store, ClassifierConfig(), detector)


def stage(engine, published, clock, **options) -> DetectionStage:
    return DetectionStage(engine, Announcer(published, TOPICS, MqttQosConfig()), DetectorConfig(**options),
                          clock=clock)


def messages(published) -> list[dict]:
    return [json.loads(m.payload) for m in published.on(TOPICS.detections)]


# ----- when it runs --------------------------------------------------------------------------


def test_every_nth_frame_is_searched(engine, published, clock, detector):
    s = stage(engine, published, clock, every_n_frames=3)
    for i in range(7):
        s.on_frame(processed(picture(), i))
    assert len(detector.seen) == 3 and s.runs == 3  # frames 0, 3 and 6


def test_the_rate_limit_skips_frames_that_come_too_soon(engine, published, clock, detector):
    s = stage(engine, published, clock, max_rate=2.0)
    for step in (0.0, 0.2, 0.2, 0.1, 0.6):
        clock.advance(step)
        s.on_frame(processed(picture()))
    assert len(detector.seen) == 3  # at 0, 0.5 and 1.1 s


def test_the_rate_gate_counts_frames_before_looking_at_the_clock(clock):
    gate = RateGate(every_n=2, max_rate=1.0, clock=clock)
    due = []
    for _ in range(8):  # frames 0.3 s apart
        due.append(gate.due())
        clock.advance(0.3)
    # even frames only, and of those only the ones a second after the last run
    assert due == [True, False, False, False, True, False, False, False]


def test_the_stage_reports_its_share_of_the_loop_on_the_given_clock(engine, published, clock):
    def ticking() -> float:  # 10 ms pass each time the stage looks at the clock
        clock.advance(0.01)
        return clock()

    s = DetectionStage(engine, Announcer(published, TOPICS, MqttQosConfig()), DetectorConfig(), clock=ticking)
    s.on_frame(processed(picture()))
    s.on_frame(processed(picture()))
    assert s.runs == 2 and s.seconds == pytest.approx(0.02)


# ----- what it publishes ---------------------------------------------------------------------


def test_objects_in_view_are_published_with_their_boxes(engine, published, clock, detector):
    detector.add_object("cat", (8, 6, 40, 30), score=0.8)
    stage(engine, published, clock).on_frame(processed(picture(), index=4))
    [message] = messages(published)
    assert message["frame"] == 4
    [cat] = message["objects"]
    assert cat["label"] == "cat" and cat["box_px"] == [8, 6, 40, 30] and cat["score"] == pytest.approx(0.8)


def test_one_empty_message_says_the_objects_are_gone_then_silence(engine, published, clock, detector):
    s = stage(engine, published, clock)
    s.on_frame(processed(picture()))  # nothing seen, nothing said
    detector.add_object("cat", (8, 6, 40, 30))
    s.on_frame(processed(picture()))
    detector.remove_objects()
    for _ in range(3):
        s.on_frame(processed(picture()))
    assert [len(m["objects"]) for m in messages(published)] == [1, 0]


def test_a_detector_failure_reaches_the_processing_loop(engine, published, clock, detector):
    detector.fail_next()
    with pytest.raises(DetectorError):
        stage(engine, published, clock).on_frame(processed(picture()))
    assert messages(published) == []


# ----- classifying what it found -------------------------------------------------------------


def test_each_object_is_classified_on_its_own_crop(engine, published, clock, detector, store, embedder):
    store.add("red", embedder.embed(picture(((0, 0, 80, 60), RED))))
    store.add("blue", embedder.embed(picture(((0, 0, 80, 60), BLUE))))
    detector.add_object("thing", (0, 0, 20, 20))
    detector.add_object("thing", (40, 30, 80, 60))
    image = picture(((0, 0, 20, 20), RED), ((40, 30, 80, 60), BLUE))
    stage(engine, published, clock, classify_objects=True).on_frame(processed(image))
    [message] = messages(published)
    assert [o["class"]["label"] for o in message["objects"]] == ["red", "blue"]


def test_objects_are_not_classified_unless_asked(engine, published, clock, detector, store, embedder):
    store.add("red", embedder.embed(picture(((0, 0, 80, 60), RED))))
    detector.add_object("thing", (0, 0, 20, 20))
    stage(engine, published, clock).on_frame(processed(picture()))
    [message] = messages(published)
    assert "class" not in message["objects"][0]
    assert len(embedder.seen) == 1  # only the example taught above


def test_with_an_empty_store_objects_go_unclassified(engine, published, clock, detector, embedder):
    detector.add_object("thing", (0, 0, 20, 20))
    stage(engine, published, clock, classify_objects=True).on_frame(processed(picture()))
    assert "class" not in messages(published)[0]["objects"][0] and embedder.seen == []


def test_a_box_thinner_than_a_pixel_is_published_unclassified(engine, published, clock, detector, store, embedder):
    store.add("red", embedder.embed(picture(((0, 0, 80, 60), RED))))
    detector.add_object("line", (10, 10, 10, 40))
    stage(engine, published, clock, classify_objects=True).on_frame(processed(picture()))
    [line] = messages(published)[0]["objects"]
    assert line["label"] == "line" and "class" not in line


# ----- largest object (teaching on crops) ----------------------------------------------------


def test_largest_object_is_the_biggest_box_whatever_its_score(engine, published, clock, detector):
    detector.add_object("small", (0, 0, 10, 10), score=0.99)
    detector.add_object("big", (20, 20, 70, 55), score=0.6)
    assert stage(engine, published, clock).largest_object(picture()) == (20, 20, 70, 55)


def test_largest_object_with_nothing_in_view_is_none(engine, published, clock):
    assert stage(engine, published, clock).largest_object(picture()) is None


# ----- the real detector ---------------------------------------------------------------------


def test_the_real_pets_detector_finds_the_cat_in_a_photo(embedder, store, published, clock):
    detector = open_detector(MODELS / "ssd_mobilenet_v1_pets_quant_postprocess.tflite",
                             MODELS / "pets_labels.txt", DetectorConfig(threads=1, threshold=0.5))
    s = stage(Engine(embedder, store, ClassifierConfig(), detector), published, clock)
    image = load_image(IMAGES / "cat.bmp")
    s.on_frame(processed(image))
    [message] = messages(published)
    assert message["objects"] and all(o["score"] >= 0.5 for o in message["objects"])
    x0, y0, x1, y1 = s.largest_object(image)
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
