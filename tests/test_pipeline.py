"""The processing loop on its own: frames in, smoothed predictions out, on a fake clock.

A :class:`FakeEmbedder` (mean colour per quarter) and a real SQLite store in a
temporary directory; solid red and blue frames are the two classes.  One test
runs the real embedder on real photos.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import IMAGES, MODELS, wait_until

from edgeknn.cameras import ReplayCamera
from edgeknn.config import ClassifierConfig, PipelineConfig
from edgeknn.errors import ImageError
from edgeknn.images import load_image
from edgeknn.results import Frame, Prediction
from edgeknn.service.engine import Engine
from edgeknn.service.health import Health
from edgeknn.service.pipeline import (
    CaptureThread,
    FrameSlot,
    Processed,
    Processor,
    PublishGate,
    Timings,
)
from edgeknn.store import Store
from edgeknn.vision.embedder import open_embedder
from edgeknn.vision.fake import FakeEmbedder

RED, BLUE = (200, 30, 30), (30, 30, 200)


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.full((24, 32, 3), rgb, dtype=np.uint8)


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Announced:
    """The processor's ``announce``: keeps what would have been published."""

    def __init__(self) -> None:
        self.predictions: list[Prediction] = []
        self.frames: list[Frame] = []
        self.latencies: list[float] = []

    def __call__(self, prediction: Prediction, frame: Frame, latency_ms: float) -> None:
        self.predictions.append(prediction)
        self.frames.append(frame)
        self.latencies.append(latency_ms)

    @property
    def labels(self) -> list[str | None]:
        return [None if p.unknown else p.label for p in self.predictions]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "store.db") as store:
        yield store


def engine_for(store: Store, embedder=None, **taught: tuple[int, int, int]) -> Engine:
    """An engine over ``store``, with one example of each class taught: label=colour."""
    embedder = embedder or FakeEmbedder()
    store.bind(embedder.info.fingerprint, embedder.info.dim)
    for label, rgb in taught.items():
        store.add(label, embedder.embed(solid(rgb)))
    return Engine(embedder, store, ClassifierConfig())


class Frames:
    """Numbered frames captured at the clock's time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._index = 0

    def __call__(self, rgb: tuple[int, int, int]) -> Frame:
        frame = Frame(solid(rgb), self._index, self._clock(), 1.7e9 + self._index)
        self._index += 1
        return frame


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def frame(clock):
    return Frames(clock)


def processor(engine: Engine, announced: Announced, clock: Clock, *, smoothing: int = 1,
              interval: float = 0.0, hooks=None) -> Processor:
    return Processor(engine, classifier=ClassifierConfig(smoothing=smoothing),
                     pipeline=PipelineConfig(prediction_interval=interval),
                     announce=announced, after_frame=hooks, clock=clock)


# ----- classifying ---------------------------------------------------------------------------


def test_an_empty_store_publishes_unknown_for_every_frame(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store), announced, clock)
    for _ in range(3):
        p.process(frame(RED))
    assert announced.labels == [None, None, None]
    assert all(pred.unknown and pred.label is None for pred in announced.predictions)


def test_each_frame_gets_the_class_it_looks_like(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED, blue=BLUE), announced, clock)
    for rgb in (RED, BLUE, RED):
        p.process(frame(rgb))
    assert announced.labels == ["red", "blue", "red"]
    assert announced.predictions[1].confidence == announced.predictions[1].scores["blue"]


def test_smoothing_keeps_the_label_until_most_of_the_window_agrees(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED, blue=BLUE), announced, clock, smoothing=3)
    shown = [p.process(frame(rgb)).prediction.label for rgb in (RED, RED, RED, BLUE, BLUE)]
    assert shown == ["red", "red", "red", "red", "blue"]


def test_the_smoothed_prediction_carries_the_smoothed_labels_share_of_this_frame(store, clock, frame):
    p = processor(engine_for(store, red=RED, blue=BLUE), Announced(), clock, smoothing=3)
    for rgb in (RED, RED):
        p.process(frame(rgb))
    done = p.process(frame(BLUE))
    assert done.prediction.label == "red"
    assert done.prediction.confidence == done.prediction.scores["red"] < 0.5


def test_a_frame_below_the_unknown_threshold_is_published_as_unknown(store, clock, frame):
    engine = engine_for(store, red=RED)
    engine.classifier = ClassifierConfig(unknown_threshold=0.999)
    announced = Announced()
    processor(engine, announced, clock).process(frame(BLUE))
    assert announced.labels == [None]
    assert announced.predictions[0].label == "red"  # still names the nearest class


# ----- publishing ----------------------------------------------------------------------------


def test_an_unchanged_label_is_published_again_only_after_the_interval(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED), announced, clock, interval=10.0)
    published = []
    for step in (0.0, 4.0, 5.9, 0.1, 1.0):
        clock.advance(step)
        published.append(p.process(frame(RED)).published)
    assert published == [True, False, False, True, False]
    assert len(announced.predictions) == 2


def test_a_new_label_is_published_at_once_whatever_the_interval(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED, blue=BLUE), announced, clock, interval=3600.0)
    for rgb in (RED, RED, BLUE, BLUE, RED):
        p.process(frame(rgb))
    assert announced.labels == ["red", "blue", "red"]


def test_latency_runs_from_capture_to_publishing_on_the_given_clock(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED), announced, clock)
    captured = frame(RED)
    clock.advance(0.25)
    p.process(captured)
    assert announced.latencies == [pytest.approx(250.0)]
    assert announced.frames == [captured]


# ----- changes from other threads ------------------------------------------------------------


def test_reset_forgets_the_smoothing_history(store, clock, frame):
    p = processor(engine_for(store, red=RED, blue=BLUE), Announced(), clock, smoothing=5)
    for _ in range(4):
        p.process(frame(RED))
    p.reset()
    assert p.process(frame(BLUE)).prediction.label == "blue"


def test_new_loop_settings_apply_from_the_next_frame(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED, blue=BLUE), announced, clock, smoothing=5, interval=3600.0)
    for _ in range(3):
        p.process(frame(RED))
    p.configure(ClassifierConfig(smoothing=1), PipelineConfig(prediction_interval=0.0))
    assert [p.process(frame(rgb)).published for rgb in (BLUE, BLUE)] == [True, True]
    assert announced.labels == ["red", "blue", "blue"]


def test_new_classifier_settings_apply_to_the_next_frame(store, clock, frame):
    engine = engine_for(store, red=RED)
    p = processor(engine, Announced(), clock)
    assert p.process(frame(BLUE)).prediction.unknown is False
    engine.classifier = ClassifierConfig(unknown_threshold=0.999)
    assert p.process(frame(BLUE)).prediction.unknown is True


# ----- hooks and failures --------------------------------------------------------------------


def test_every_processed_frame_reaches_the_hooks_in_order(store, clock, frame):
    seen: list[tuple[str, int]] = []
    hooks = [lambda d: seen.append(("leds", d.frame.index)), lambda d: seen.append(("detector", d.frame.index))]
    p = processor(engine_for(store, red=RED), Announced(), clock, hooks=hooks)
    p.process(frame(RED))
    p.process(frame(RED))
    assert seen == [("leds", 0), ("detector", 0), ("leds", 1), ("detector", 1)]


def test_a_failing_hook_is_logged_and_counted_and_the_others_still_run(store, clock, frame, caplog):
    later: list[Processed] = []

    def broken(done: Processed) -> None:
        raise ImageError("no LED wired")

    announced = Announced()
    p = processor(engine_for(store, red=RED), announced, clock, hooks=[broken, later.append])
    p.process(frame(RED))
    assert p.errors.count == 1 and "no LED wired" in caplog.text
    assert len(later) == 1 and announced.labels == ["red"] and p.processed == 1


def test_a_hook_that_keeps_failing_is_logged_once_a_minute_with_a_count(store, clock, frame, caplog):
    def broken(done: Processed) -> None:
        raise ImageError("no LED wired")

    p = processor(engine_for(store), Announced(), clock, hooks=[broken])
    for _ in range(3):
        p.process(frame(RED))
    clock.advance(60.0)
    p.process(frame(RED))
    reports = [r.getMessage() for r in caplog.records if "no LED wired" in r.getMessage()]
    assert len(reports) == 2 and "(2 more since the last report)" in reports[1]
    assert p.errors.count == 4


def run_in_background(p: Processor, slot: FrameSlot, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=p.run, args=(slot, stop, Health()), daemon=True)
    thread.start()
    return thread


def test_a_frame_that_fails_to_embed_is_counted_and_the_loop_goes_on(store, clock, frame):
    embedder = FakeEmbedder()
    engine = engine_for(store, embedder, red=RED)
    announced = Announced()
    p = processor(engine, announced, clock)
    slot, stop = FrameSlot(), threading.Event()
    embedder.fail_next()
    thread = run_in_background(p, slot, stop)
    try:
        slot.put(frame(RED))
        wait_until(lambda: p.errors.count == 1, what="the failed frame to be counted")
        slot.put(frame(RED))
        wait_until(lambda: p.processed == 1, what="the next frame to be processed")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert [f.index for f in announced.frames] == [1]


def test_run_takes_the_newest_frame_and_returns_when_the_source_ends(store, clock, frame):
    announced = Announced()
    p = processor(engine_for(store, red=RED), announced, clock)
    slot = FrameSlot()
    for _ in range(3):
        slot.put(frame(RED))
    slot.end()
    p.run(slot, threading.Event(), Health())
    assert [f.index for f in announced.frames] == [2]
    assert slot.dropped == 2


# ----- the frame slot and the capture thread -------------------------------------------------


def test_the_slot_keeps_the_newest_frame_and_counts_the_ones_never_taken(clock, frame):
    slot = FrameSlot()
    slot.put(frame(RED))
    slot.put(frame(RED))
    assert slot.take(0).index == 1
    assert slot.take(0) is None  # nothing new since
    slot.put(frame(RED))
    assert (slot.captured, slot.dropped) == (3, 1)


def test_newer_than_peeks_without_taking(clock, frame):
    slot = FrameSlot()
    slot.put(frame(RED))
    assert slot.newer_than(-1, 0).index == 0
    assert slot.newer_than(0, 0) is None
    assert slot.take(0).index == 0


def test_a_waiting_take_wakes_when_the_source_ends():
    slot = FrameSlot()
    threading.Timer(0.05, slot.end).start()
    assert slot.take(timeout=30) is None and slot.ended


def test_capture_numbers_every_frame_and_ends_the_slot_after_the_last():
    camera = ReplayCamera(IMAGES / "traffic_frames", fps=0, loop=False)
    slot, stop = FrameSlot(), threading.Event()
    capture = CaptureThread(camera, slot, stop)
    capture.start()
    assert capture.join(10)
    assert slot.ended and slot.captured == 3 and slot.latest.index == 2
    assert capture.crashed is None


class BrokenCamera:
    name = "broken camera"

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        raise ZeroDivisionError("a bug in the camera code")

    def close(self) -> None:
        pass


def test_a_crash_in_capture_is_kept_and_ends_the_slot(caplog):
    slot = FrameSlot()
    capture = CaptureThread(BrokenCamera(), slot, threading.Event())
    capture.start()
    assert capture.join(10)
    assert isinstance(capture.crashed, ZeroDivisionError) and slot.ended
    assert "capture crashed" in caplog.text


# ----- the pieces, each on a fake clock ------------------------------------------------------


def test_the_publish_gate_passes_changes_at_once_and_repeats_after_the_interval(clock):
    gate = PublishGate(5.0, clock)
    assert gate.should_publish(None)  # the first, even of "unknown"
    assert not gate.should_publish(None)
    assert gate.should_publish("cat")
    clock.advance(4.9)
    assert not gate.should_publish("cat")
    clock.advance(0.1)
    assert gate.should_publish("cat")


def test_a_publish_interval_of_zero_publishes_every_frame(clock):
    gate = PublishGate(0.0, clock)
    assert all(gate.should_publish("cat") for _ in range(3))


def test_timings_report_percentiles_and_the_processed_frame_rate():
    timings = Timings(window=10)
    assert (timings.fps(), timings.percentile(50)) == (0.0, 0.0)
    for i in range(5):
        timings.record(10.0 * (i + 1), at=100.0 + 0.25 * i)
    assert timings.percentile(50) == pytest.approx(30.0)
    assert timings.fps() == pytest.approx(4.0)


# ----- the real embedder ---------------------------------------------------------------------


def test_with_the_real_embedder_a_taught_cat_is_recognised_in_another_photo(store, clock):
    embedder = open_embedder(MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                             accelerator="cpu", threads=1, resize="center-crop")
    store.bind(embedder.info.fingerprint, embedder.info.dim)
    for label in ("cat", "dog"):
        store.add(label, embedder.embed(load_image(IMAGES / "imprinting" / f"{label}_train_0.bmp")))
    announced = Announced()
    p = processor(Engine(embedder, store, ClassifierConfig()), announced, clock)
    for i, name in enumerate(("cat_test_0.bmp", "dog_test_0.bmp")):
        p.process(Frame(load_image(IMAGES / "imprinting" / name), i, clock(), 0.0))
    assert announced.labels == ["cat", "dog"]
