"""Health: what the state topic, STATUS= and the watchdog say, on a fake clock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgeknn.errors import CameraError
from edgeknn.results import Frame
from edgeknn.service.fresh import FreshFrames
from edgeknn.service.health import Health, HealthPolicy
from edgeknn.service.pipeline import FrameSlot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def health(clock, **policy) -> Health:
    return Health(HealthPolicy(**policy), clock=clock)


def run_frames(h: Health, clock: Clock, seconds: float, fps: float = 10.0) -> None:
    for _ in range(int(seconds * fps)):
        clock.advance(1 / fps)
        h.frame_arrived()
        h.frame_processed()
        h.update()


def test_frames_flowing_are_ok_and_feed_the_watchdog(clock):
    h = health(clock)
    run_frames(h, clock, 3)
    assert h.summary() == "ok"
    assert h.should_feed_watchdog()


def test_a_camera_that_stops_delivering_is_failed_within_the_stall_time_and_starves_the_watchdog(clock):
    h = health(clock, stall_after=5.0)
    run_frames(h, clock, 2)
    clock.advance(4.9)
    h.update()
    assert h.summary() == "ok"
    clock.advance(0.2)
    changes = h.update()
    assert [c.part for c in changes] == ["camera"]
    assert h.summary() == "camera: failed: no frame for over 5 s (the camera is not delivering)"
    assert not h.should_feed_watchdog()



def test_healthz_says_processing_only_while_frames_are_processed_and_inference_works(clock):
    h = health(clock, stall_after=5.0)
    run_frames(h, clock, 1)
    assert h.is_processing()
    clock.advance(5.1)  # a camera retried with backoff still feeds the watchdog, but nothing is processed
    assert not h.is_processing()
    run_frames(h, clock, 1)
    assert h.is_processing()
    h.inference_failed("the Edge TPU went away")
    assert not h.is_processing()

def test_a_camera_that_never_delivers_is_failed_after_the_stall_time_from_start(clock):
    h = health(clock, stall_after=5.0)
    clock.advance(5.0)
    h.update()
    assert h.summary().startswith("camera: failed: no frame")
    assert not h.should_feed_watchdog()


def test_the_stall_time_counts_from_the_start_of_the_service_not_from_loading_the_models(clock):
    h = health(clock, stall_after=5.0)
    clock.advance(30)  # models loading, MQTT connecting
    h.begin()
    clock.advance(4)
    h.update()
    assert h.summary() == "ok" and h.should_feed_watchdog()


def test_a_failing_camera_being_retried_keeps_the_watchdog_fed_and_says_why(clock):
    h = health(clock, stall_after=5.0, retry_grace=10.0)
    run_frames(h, clock, 1)
    for delay in (1, 2, 4, 8, 16, 30, 30):
        h.camera_failed("picamera2 0: no frame within 2 s")
        h.camera_retrying(delay)
        clock.advance(delay)
        h.update()
        assert h.should_feed_watchdog()
    assert h.summary() == "camera: failed: picamera2 0: no frame within 2 s"


def test_a_retry_that_hangs_starves_the_watchdog(clock):
    h = health(clock, retry_grace=10.0)
    h.camera_failed("unplugged")
    h.camera_retrying(2.0)
    clock.advance(11.9)
    assert h.should_feed_watchdog()
    clock.advance(0.2)  # the reopen (or its first read) never came back
    assert not h.should_feed_watchdog()


def test_one_bad_file_in_six_does_not_flap_the_state(clock):
    h = health(clock, stall_after=5.0, fail_after=3)
    changes = []
    for i in range(150):  # 15 s of a replay with one bad file in six, reopened after 1 s
        clock.advance(0.1)
        if i % 6 == 5:
            h.camera_failed("replay: 5.jpg: cannot decode")
            h.camera_retrying(1.0)
            clock.advance(1.0)
        else:
            h.frame_arrived()
            h.frame_processed()
        changes += h.update()
    assert changes == []
    assert h.summary() == "ok"


def test_a_failed_camera_is_ok_again_only_after_working_for_the_recovery_time(clock):
    h = health(clock, stall_after=5.0, recover_after=3.0)
    clock.advance(6)
    h.update()
    assert h.parts()["camera"].failed
    run_frames(h, clock, 2.5)
    assert h.parts()["camera"].failed
    run_frames(h, clock, 1)
    assert str(h.parts()["camera"]) == "ok"


def test_inference_failing_on_every_frame_is_reported_starves_the_watchdog_and_gives_up(clock):
    h = health(clock, fail_after=3, max_inference_failures=10)
    run_frames(h, clock, 1)
    for n in range(10):
        clock.advance(0.1)
        h.frame_arrived()
        h.inference_failed("embedder (edgetpu) failed to run: USB transfer error")
        h.update()
        if n == 2:
            assert h.summary() == "inference: failed: embedder (edgetpu) failed to run: USB transfer error"
        assert not h.should_feed_watchdog()
        assert (h.inference_exhausted() is None) == (n < 9)
    assert h.inference_exhausted() == (
        "10 inference failures in a row, the last: embedder (edgetpu) failed to run: USB transfer error")
    h.inference_restarted()
    assert h.inference_exhausted() is None


def test_gpio_failure_is_reported_after_camera_and_inference(clock):
    h = health(clock)
    h.gpio_failed("no GPIO chip")
    run_frames(h, clock, 1)
    assert h.summary() == "gpio: failed: no GPIO chip"
    assert h.should_feed_watchdog()  # buttons are not frames: the service is still doing its job


def test_fps_is_the_rate_over_the_last_window_and_falls_to_zero(clock):
    h = health(clock, fps_window=10.0)
    run_frames(h, clock, 20, fps=5)
    assert h.fps() == pytest.approx(5.0, rel=0.05)
    clock.advance(5)
    assert h.fps() == pytest.approx(2.5, rel=0.1)
    clock.advance(5.1)
    assert h.fps() == 0.0


def test_the_status_line_has_fps_backend_examples_and_the_failure(clock):
    h = health(clock, fps_window=10.0)
    run_frames(h, clock, 10, fps=2)
    assert h.status_line("cpu", 12) == "2.0 fps on cpu, 12 examples; ok"
    clock.advance(6)
    h.update()
    assert h.status_line("cpu", 12).endswith("; camera: failed: no frame for over 5 s (the camera is not delivering)")


# ----- FreshFrames -----------------------------------------------------------------


def frame(index: int, captured: float) -> Frame:
    return Frame(np.zeros((4, 4, 3), np.uint8), index, captured, 0.0)


def test_a_snapshot_refuses_a_frame_from_before_a_hang(clock):
    slot = FrameSlot()
    slot.put(frame(0, clock.now))
    fresh = FreshFrames(slot, max_age=2.0, clock=clock)
    assert fresh.latest is not None
    clock.advance(12)
    with pytest.raises(CameraError, match=r"the newest camera frame is 12 s old \(older than 2 s\)"):
        _ = fresh.latest


def test_an_add_waits_for_a_fresh_frame_and_gets_none_when_the_camera_hangs():
    slot = FrameSlot()
    slot.put(frame(0, time.monotonic() - 30))
    fresh = FreshFrames(slot, max_age=2.0)  # the real clock: newer_than waits on it
    assert fresh.newer_than(-1, timeout=0.2) is None


def test_an_add_takes_the_first_fresh_frame_after_a_stale_one():
    slot = FrameSlot()
    slot.put(frame(0, time.monotonic() - 30))
    fresh = FreshFrames(slot, max_age=2.0)
    threading.Timer(0.1, lambda: slot.put(frame(1, time.monotonic()))).start()
    got = fresh.newer_than(-1, timeout=5)
    assert got is not None and got.index == 1
