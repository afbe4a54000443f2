"""The Pi camera adapter against tests/stubs/picamera2, which imitates picamera2's job queue,
its stop() and the import failures of Debian's package (see the stub's docstring)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from edgeknn.cameras.base import CameraStopped
from edgeknn.cameras.picam import PiCamera
from edgeknn.cameras.retry import Backoff, RetryingCamera
from edgeknn.config import CameraConfig
from edgeknn.errors import CameraError

STUBS = Path(__file__).parent / "stubs"


@pytest.fixture
def stub(monkeypatch):
    """The stub picamera2 on sys.path; ``stub(mode)`` imports it with EDGEKNN_STUB_PICAMERA2=mode."""
    monkeypatch.syspath_prepend(str(STUBS))

    def load(mode: str = ""):
        monkeypatch.setenv("EDGEKNN_STUB_PICAMERA2", mode)
        for name in ("picamera2", "libcamera"):
            sys.modules.pop(name, None)
        if mode == "numpy2":
            return None
        import picamera2

        return picamera2.STUB

    yield load
    for name in ("picamera2", "libcamera"):
        sys.modules.pop(name, None)


def finishes(call, within: float = 10.0) -> bool:
    """Whether ``call`` returns (rather than hangs) within ``within`` s."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive()


def test_frames_come_through_the_job_queue(stub):
    stub()
    cam = PiCamera(64, 48, fps=10, lores=False)
    cam.open()
    try:
        assert cam.read().shape == (48, 64, 3)
    finally:
        cam.close()


def test_a_stalled_camera_times_out_and_closes_instead_of_hanging(stub):
    state = stub()
    cam = PiCamera(64, 48, fps=10, lores=False)
    cam.open()
    state.delivering.clear()  # the sensor stops: the capture job is never completed
    with pytest.raises(CameraError, match=r"no frame within 2 s"):
        cam.read()
    assert finishes(cam.close), "close() queued stop() behind the stale capture job"


def test_a_stalled_camera_is_reopened_and_delivers_again(stub):
    state = stub()
    reports: list[tuple[bool, str]] = []
    stop = threading.Event()
    cam = RetryingCamera(PiCamera(64, 48, fps=10, lores=False), stop=stop, backoff=Backoff(0.01, 0.01),
                         on_state=lambda ok, message: reports.append((ok, message)))
    cam.open()
    cam.read()
    state.delivering.clear()
    threading.Timer(3.0, state.delivering.set).start()  # the cable is pushed back in
    try:
        assert cam.read().shape == (48, 64, 3)
    finally:
        stop.set()
        cam.close()
    assert [ok for ok, _ in reports] == [True, False, True]
    assert "no frame within 2 s" in reports[1][1]
    assert state.opened >= 2


def test_debian_picamera2_under_numpy_2_is_a_camera_error_with_the_fix(stub):
    stub("numpy2")
    with pytest.raises(CameraError, match=r"picamera2 does not import with numpy .*numpy<2"):
        PiCamera(64, 48, fps=10, lores=False).open()


def test_picamera2_before_0_3_20_is_refused_with_the_upgrade_command(stub):
    stub("0.3.16")
    with pytest.raises(CameraError, match=r"too old.*0\.3\.20.*apt install --only-upgrade python3-picamera2"):
        PiCamera(64, 48, fps=10, lores=False).open()


class CloseHangs:
    """A camera whose read fails and whose close then hangs, as a stalled driver's may."""

    name = "stuck camera"

    def __init__(self) -> None:
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def read(self):
        raise CameraError("stuck camera: no frame within 2 s")

    def close(self) -> None:
        self.release.wait(10)


def test_a_failure_is_reported_before_the_camera_is_closed():
    camera, stop, reports = CloseHangs(), threading.Event(), []
    defaults = CameraConfig()
    retrying = RetryingCamera(camera, stop=stop, on_state=lambda ok, message: reports.append(message),
                              backoff=Backoff(defaults.retry_initial, defaults.retry_max))
    retrying.open()
    def read() -> None:
        with pytest.raises(CameraStopped):  # fails, hangs in close(), then sees the stop
            retrying.read()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(100):
            if reports:
                break
            stop.wait(0.05)
        assert reports == ["stuck camera: no frame within 2 s"]
    finally:
        stop.set()
        camera.release.set()
        reader.join(10)
