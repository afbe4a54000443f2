"""The teacher: what a button press or an MQTT command does to the store.

A :class:`FakeEmbedder` over a real store, frames from a real
:class:`FrameSlot`, and a :class:`FakeDetector` for crops.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from edgeknn.config import ClassifierConfig
from edgeknn.errors import CameraError, EdgeKnnError, UnknownLabel
from edgeknn.images import decode_image
from edgeknn.results import Frame
from edgeknn.service.engine import Engine
from edgeknn.service.pipeline import FrameSlot
from edgeknn.service.teacher import Teacher
from edgeknn.service.viewmaker import ViewMaker
from edgeknn.vision.fake import FakeDetector, FakeEmbedder

WAIT = 0.05  # seconds the teacher waits for a camera frame here (5 in the service)


def image(value: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A frame that says which it is: every pixel ``value``."""
    return np.full((*size, 3), value, dtype=np.uint8)


class Camera:
    """Puts numbered frames into the slot, as the capture thread does."""

    def __init__(self, slot: FrameSlot) -> None:
        self.slot = slot
        self.index = 0

    def shows(self, *values: int) -> None:
        for value in values:
            self.slot.put(Frame(image(value), self.index, 0.0, 0.0))
            self.index += 1


class Changes:
    def __init__(self) -> None:
        self.counts: list[dict[str, int]] = []

    def __call__(self, counts: dict[str, int]) -> None:
        self.counts.append(counts)


@pytest.fixture
def slot():
    return FrameSlot()


@pytest.fixture
def camera(slot):
    return Camera(slot)


@pytest.fixture
def changes():
    return Changes()


@pytest.fixture
def detector():
    return FakeDetector()


@pytest.fixture
def teacher(embedder, store, slot, changes, detector):
    # No extra views, so the embedder sees exactly the taught frames (crop views: see below).
    engine = Engine(embedder, store, ClassifierConfig(views="none"), detector)
    snapshots: list[bytes] = []
    teacher = Teacher(engine, slot, on_change=changes, on_snapshot=snapshots.append, default_target="frame",
                      frame_wait=WAIT)
    teacher.snapshots = snapshots
    return teacher


def taught_values(embedder: FakeEmbedder) -> list[int]:
    """Which frames the embedder was asked to embed (by their pixel value)."""
    return [int(img[0, 0, 0]) for img in embedder.seen]


# ----- teaching from the camera --------------------------------------------------------------


def test_a_press_teaches_the_newest_camera_frame(teacher, camera, store, embedder):
    camera.shows(10, 20)
    reply = teacher.add("cat")
    assert store.counts() == {"cat": 1}
    assert taught_values(embedder) == [20]
    assert reply["label"] == "cat" and reply["counts"] == {"cat": 1} and len(reply["example_ids"]) == 1


def test_with_crop_views_a_press_costs_one_invoke_and_the_views_follow(camera, store, embedder, slot):
    # On the CPU "auto" means crops: a hold recording several examples a second must not
    # wait for 5 more invokes per example; the view maker makes them after the example is stored.
    engine = Engine(embedder, store, ClassifierConfig(), None)
    assert engine.views == "crops"
    maker = ViewMaker(engine)
    teacher = Teacher(engine, slot, on_change=lambda counts: None, default_target="frame",
                      frame_wait=WAIT, view_maker=maker)
    camera.shows(10, 20)
    teacher.add("cat")
    assert taught_values(embedder) == [20] and store.counts() == {"cat": 1} and store.view_count() == 0
    maker.start()
    try:
        deadline = time.monotonic() + 10
        while store.view_count() < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert maker.stop()
    assert store.view_count() == 5 and len(embedder.seen) == 6  # the mirror and 4 corners


def test_teaching_twice_never_takes_the_same_frame_twice(teacher, camera, embedder):
    camera.shows(10)
    teacher.add("cat")
    with pytest.raises(CameraError, match="no new camera frame"):
        teacher.add("cat")  # the camera has shown nothing new
    camera.shows(11)
    teacher.add("cat")
    assert taught_values(embedder) == [10, 11]


class ScriptedFrames:
    """A FrameSource whose camera has the next frame ready the moment one is asked for."""

    def __init__(self, *values: int) -> None:
        self._frames = [Frame(image(v), i, 0.0, 0.0) for i, v in enumerate(values)]
        self.latest: Frame | None = None
        self.asked: list[int] = []

    def newer_than(self, index: int, timeout: float) -> Frame | None:
        self.asked.append(index)
        frame = next((f for f in self._frames if f.index > index), None)
        self.latest = frame or self.latest
        return frame


def test_a_count_teaches_that_many_frames_each_newer_than_the_last(embedder, store):
    frames = ScriptedFrames(5, 6, 7, 8)
    teacher = Teacher(Engine(embedder, store, ClassifierConfig(views="none")), frames, on_change=Changes(),
                      default_target="frame")
    reply = teacher.add("cat", 3)
    assert len(reply["example_ids"]) == 3 and store.counts() == {"cat": 3}
    assert taught_values(embedder) == [5, 6, 7] and frames.asked == [-1, 0, 1]
    teacher.add("cat")
    assert taught_values(embedder)[-1] == 8 and frames.asked[-1] == 2


def test_when_the_camera_stops_mid_way_what_came_is_taught(teacher, camera, store):
    camera.shows(1)
    reply = teacher.add("cat", 5)
    assert len(reply["example_ids"]) == 1 and store.counts() == {"cat": 1}


def test_no_frame_at_all_is_an_error_that_names_the_camera(teacher, store, changes):
    with pytest.raises(CameraError, match="is the camera working"):
        teacher.add("cat")
    assert store.counts() == {} and changes.counts == []


def test_an_image_sent_with_the_command_is_taught_instead_of_the_camera(teacher, camera, store, embedder):
    camera.shows(10)
    teacher.add("dog", image=image(99))
    assert taught_values(embedder) == [99]
    [(_, label, _, thumbnail, source)] = list(store.iter_examples())
    assert (label, source) == ("dog", "mqtt:image") and decode_image(thumbnail).shape[2] == 3


def test_every_change_announces_the_new_class_counts(teacher, camera, changes):
    camera.shows(1)
    teacher.add("cat")
    teacher.add("dog", image=image(2))
    teacher.rename("dog", "puppy")
    teacher.remove_label("cat")
    teacher.clear()
    assert changes.counts == [{"cat": 1}, {"cat": 1, "dog": 1}, {"cat": 1, "puppy": 1}, {"puppy": 1}, {}]


def test_the_replies_say_what_changed(teacher, store):
    [first] = teacher.add("cat", image=image(1))["example_ids"]
    teacher.add("cat", image=image(2))
    teacher.add("dog", image=image(3))
    assert teacher.remove_example(first) == {"example_id": first, "label": "cat", "removed": 1,
                                             "counts": {"cat": 1, "dog": 1}}
    assert teacher.rename("cat", "kitty") == {"from": "cat", "to": "kitty", "moved": 1,
                                              "counts": {"kitty": 1, "dog": 1}}
    assert teacher.remove_label("dog") == {"label": "dog", "removed": 1, "counts": {"kitty": 1}}
    assert teacher.clear() == {"removed": 1, "counts": {}}


def test_a_refused_change_announces_nothing(teacher, changes):
    with pytest.raises(UnknownLabel):
        teacher.remove_label("ghost")
    assert changes.counts == []


# ----- teaching on the largest object --------------------------------------------------------


def test_largest_object_teaches_the_crop_the_detector_found(teacher, camera, detector, embedder):
    detector.add_object("cat", (8, 4, 40, 36))
    camera.shows(7)
    teacher.add("cat", target="largest_object")
    [crop] = embedder.seen
    assert crop.shape[:2] == (32, 32)


def test_largest_object_with_nothing_in_view_is_a_clear_error(teacher, camera, store):
    camera.shows(7)
    with pytest.raises(EdgeKnnError, match="found no object"):
        teacher.add("cat", target="largest_object")
    assert store.counts() == {}


def test_largest_object_without_a_detector_says_how_to_enable_it(embedder, store, slot, camera):
    teacher = Teacher(Engine(embedder, store, ClassifierConfig(views="none")), slot, on_change=Changes(),
                      default_target="frame", frame_wait=WAIT)
    camera.shows(1)
    with pytest.raises(EdgeKnnError, match=r"\[detector\] enabled = true"):
        teacher.add("cat", target="largest_object")


def test_the_default_target_applies_when_a_command_names_none(embedder, store, slot, camera, detector):
    engine = Engine(embedder, store, ClassifierConfig(views="none"), detector)
    detector.add_object("cat", (0, 0, 16, 16))
    teacher = Teacher(engine, slot, on_change=Changes(), default_target="largest_object", frame_wait=WAIT)
    camera.shows(1)
    teacher.add("cat")
    assert embedder.seen[0].shape[:2] == (16, 16)


# ----- snapshot and buttons ------------------------------------------------------------------


def test_a_snapshot_sends_the_newest_frame_as_jpeg(teacher, camera):
    camera.shows(1, 2)
    reply = teacher.snapshot()
    [jpeg] = teacher.snapshots
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert reply == {"frame": 1, "bytes": len(jpeg), "width": 64, "height": 48}
    assert int(decode_image(jpeg)[0, 0, 0]) == pytest.approx(2, abs=2)


def test_a_snapshot_before_the_first_frame_is_a_camera_error(teacher):
    with pytest.raises(CameraError, match="no camera frame yet"):
        teacher.snapshot()
    assert teacher.snapshots == []


def test_the_clear_button_forgets_everything_and_says_so_in_the_log(teacher, store, caplog):
    teacher.add("cat", image=image(1))
    with caplog.at_level(logging.WARNING, logger="edgeknn.service.teacher"):
        teacher.clear_from_button()
    assert store.counts() == {}
    assert "removed all 1 examples" in caplog.text


def test_a_class_button_teaches_one_camera_frame(teacher, camera, store):
    camera.shows(1, 2, 3)
    teacher.add_from_button("cat")
    assert store.counts() == {"cat": 1}


class SlowFrames:
    """A FrameSlot that takes 50 ms to hand over a frame, so that two callers overlap."""

    def __init__(self, slot: FrameSlot) -> None:
        self._slot = slot

    @property
    def latest(self) -> Frame | None:
        return self._slot.latest

    def newer_than(self, index: int, timeout: float) -> Frame | None:
        time.sleep(0.05)
        return self._slot.newer_than(index, timeout)


def test_two_teachers_at_once_never_teach_the_same_frame(embedder, store, slot, camera):
    """The MQTT worker and the button worker teach at the same time."""
    teacher = Teacher(Engine(embedder, store, ClassifierConfig(views="none")), SlowFrames(slot), on_change=Changes(),
                      default_target="frame", frame_wait=WAIT)
    camera.shows(1)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def press() -> None:
        start.wait()
        try:
            teacher.add_from_button("cat")
        except CameraError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    # one took frame 1; the other waited for a newer frame that never came
    assert taught_values(embedder) == [1] and len(errors) == 1
