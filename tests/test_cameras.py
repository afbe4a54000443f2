"""Camera sources: pacing, synthetic, replay, OpenCV, the Pi camera's pixel plumbing, retrying."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES, ROOT
from PIL import Image

from edgeknn.cameras import (
    Backoff,
    Camera,
    CameraStopped,
    EndOfStream,
    FakeCamera,
    OpenCvCamera,
    Pacer,
    PiCamera,
    ReplayCamera,
    RetryingCamera,
    SyntheticCamera,
    make_camera,
)
from edgeknn.cameras.fake import frame_number
from edgeknn.cameras.opencv import target_kind
from edgeknn.cameras.synthetic import synthetic_frame
from edgeknn.cameras.yuv import lores_size, main_to_rgb, yuv420_to_rgb
from edgeknn.config import parse_config
from edgeknn.errors import CameraError
from edgeknn.images import load_image

TRAFFIC = IMAGES / "traffic_frames"
TRAFFIC_FILES = sorted(TRAFFIC.glob("*.bmp"))


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def camera_cfg(**values):
    return parse_config({"camera": values}).camera


# --- pacing ---------------------------------------------------------------------------------

def test_pacer_spaces_frames_one_period_apart():
    clock = FakeClock()
    pacer = Pacer(10, clock, clock.sleep)
    for _ in range(4):
        pacer.wait()
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_pacer_counts_the_time_the_caller_spent_between_frames():
    clock = FakeClock()
    pacer = Pacer(10, clock, clock.sleep)
    pacer.wait()
    clock.now += 0.07  # processing the frame took 70 ms
    pacer.wait()
    assert clock.sleeps == pytest.approx([0.03])


def test_pacer_lets_a_slow_reader_restart_the_schedule_instead_of_bursting():
    clock = FakeClock()
    pacer = Pacer(10, clock, clock.sleep)
    pacer.wait()
    clock.now += 1.0  # ten periods behind
    pacer.wait()
    pacer.wait()
    assert clock.sleeps == pytest.approx([0.1])


def test_pacer_at_fps_zero_never_waits():
    clock = FakeClock()
    pacer = Pacer(0, clock, clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.sleeps == []


# --- synthetic ------------------------------------------------------------------------------

def test_synthetic_frames_are_rgb_at_the_configured_size():
    cam = SyntheticCamera(64, 48, fps=0)
    cam.open()
    frame = cam.read()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8


def test_synthetic_camera_is_deterministic():
    a, b = SyntheticCamera(64, 48, fps=0), SyntheticCamera(64, 48, fps=0)
    a.open()
    b.open()
    for _ in range(5):
        assert np.array_equal(a.read(), b.read())
    assert np.array_equal(synthetic_frame(5, 64, 48), a.read())


def test_synthetic_pattern_moves_from_frame_to_frame():
    frames = [synthetic_frame(i, 64, 48) for i in range(3)]
    assert not np.array_equal(frames[0], frames[1])
    assert not np.array_equal(frames[1], frames[2])


def test_synthetic_camera_starts_again_at_frame_zero_when_reopened():
    cam = SyntheticCamera(32, 32, fps=0)
    cam.open()
    first = cam.read()
    cam.read()
    cam.close()
    cam.open()
    assert np.array_equal(cam.read(), first)


def test_reading_a_camera_that_is_not_open_is_a_camera_error():
    with pytest.raises(CameraError, match="read before open"):
        SyntheticCamera(32, 32, fps=0).read()


def test_every_camera_class_has_the_camera_interface():
    for cam in (SyntheticCamera(32, 32, fps=0), ReplayCamera(TRAFFIC), OpenCvCamera(0),
                PiCamera(64, 48, fps=10, lores=False),
                FakeCamera()):
        assert isinstance(cam, Camera)


# --- replay of images -----------------------------------------------------------------------

def test_replay_plays_a_folder_in_name_order_then_ends():
    cam = ReplayCamera(TRAFFIC, fps=0, loop=False)
    cam.open()
    for path in TRAFFIC_FILES:
        assert np.array_equal(cam.read(), load_image(path))
    with pytest.raises(EndOfStream, match="ended after 3 frames"):
        cam.read()


def test_replay_loops_back_to_the_first_frame():
    cam = ReplayCamera(TRAFFIC, fps=0, loop=True)
    cam.open()
    frames = [cam.read() for _ in range(7)]
    expected = [load_image(TRAFFIC_FILES[i % 3]) for i in range(7)]
    assert all(np.array_equal(f, e) for f, e in zip(frames, expected, strict=True))


def test_replay_paces_with_the_sleep_it_is_given():
    clock = FakeClock()
    cam = ReplayCamera(TRAFFIC, fps=5, loop=True, clock=clock, sleep=clock.sleep)
    cam.open()
    for _ in range(4):
        cam.read()
    assert clock.sleeps == pytest.approx([0.2, 0.2, 0.2])


def test_replay_plays_an_explicit_list_of_images_in_the_given_order():
    order = [TRAFFIC_FILES[2], TRAFFIC_FILES[0], TRAFFIC_FILES[2]]
    cam = ReplayCamera(order, fps=0, loop=False)
    cam.open()
    for path in order:
        assert np.array_equal(cam.read(), load_image(path))
    with pytest.raises(EndOfStream):
        cam.read()


def test_replay_starts_from_the_first_frame_when_reopened():
    cam = ReplayCamera(TRAFFIC, fps=0)
    cam.open()
    cam.read()
    cam.read()
    cam.close()
    cam.open()
    assert np.array_equal(cam.read(), load_image(TRAFFIC_FILES[0]))


def copy_traffic(folder: Path) -> Path:
    folder.mkdir()
    for path in TRAFFIC_FILES:
        shutil.copy(path, folder / path.name)
    return folder


def test_replay_of_a_folder_holding_a_non_image_names_the_file(tmp_path):
    folder = copy_traffic(tmp_path / "clip")
    (folder / "notes.txt").write_text("not a frame")
    cam = ReplayCamera(folder)
    with pytest.raises(CameraError, match="notes.txt is not an image file"):
        cam.open()


def test_replay_of_a_damaged_image_names_the_file(tmp_path):
    folder = copy_traffic(tmp_path / "clip")
    (folder / "0002.bmp").write_bytes(b"BM not really a bitmap")
    cam = ReplayCamera(folder, fps=0)
    cam.open()
    cam.read()
    with pytest.raises(CameraError, match=r"0002\.bmp"):
        cam.read()


def test_replay_skips_hidden_files(tmp_path):
    folder = copy_traffic(tmp_path / "clip")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    cam = ReplayCamera(folder, fps=0, loop=False)
    cam.open()
    assert len([cam.read() for _ in range(3)]) == 3


def test_replay_of_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(CameraError, match="has no images"):
        ReplayCamera(tmp_path).open()


def test_replay_of_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera(tmp_path / "gone").open()


def test_replay_of_a_single_image_file_repeats_it():
    cam = ReplayCamera(TRAFFIC_FILES[1], fps=0)
    cam.open()
    assert np.array_equal(cam.read(), cam.read())


# --- OpenCV: video files (cv2 is an optional extra) --------------------------------------------

@pytest.mark.parametrize("target, kind, value", [
    (0, "device", 0), ("", "device", 0), ("2", "device", 2),
    ("/dev/video0", "device", "/dev/video0"),
    ("rtsp://cam.lan/stream", "stream", "rtsp://cam.lan/stream"), ("clip.mp4", "file", "clip.mp4"),
])
def test_opencv_targets_are_told_apart(target, kind, value):
    assert target_kind(target) == (kind, value)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    cv2 = pytest.importorskip("cv2")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def nearest(frame: np.ndarray, candidates: list[np.ndarray]) -> int:
    errors = [np.abs(frame.astype(int) - c.astype(int)).mean() for c in candidates]
    return int(np.argmin(errors))


@pytest.fixture
def traffic_video(tmp_path):
    return write_video(tmp_path / "traffic.avi", [load_image(p) for p in TRAFFIC_FILES])


def test_opencv_plays_a_video_file_as_rgb_frames_in_order(traffic_video):
    originals = [load_image(p) for p in TRAFFIC_FILES]
    cam = OpenCvCamera(str(traffic_video), fps=0, loop=False)
    cam.open()
    frames = [cam.read() for _ in range(3)]
    assert [nearest(f, originals) for f in frames] == [0, 1, 2]
    assert all(np.abs(f.astype(int) - o).mean() < 8 for f, o in zip(frames, originals, strict=True))
    with pytest.raises(EndOfStream, match="after 3 frames"):
        cam.read()
    cam.close()


def test_opencv_converts_bgr_to_rgb(tmp_path):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    cam = OpenCvCamera(str(write_video(tmp_path / "red.avi", [red])), loop=False)
    cam.open()
    r, g, b = cam.read().reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 50 and b < 50


def test_opencv_loops_a_video_file(traffic_video):
    originals = [load_image(p) for p in TRAFFIC_FILES]
    cam = OpenCvCamera(str(traffic_video), fps=0, loop=True)
    cam.open()
    assert [nearest(cam.read(), originals) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_replay_plays_a_video_file_through_opencv(traffic_video):
    originals = [load_image(p) for p in TRAFFIC_FILES]
    clock = FakeClock()
    cam = ReplayCamera(traffic_video, fps=10, loop=False, clock=clock, sleep=clock.sleep)
    cam.open()
    assert [nearest(cam.read(), originals) for _ in range(3)] == [0, 1, 2]
    assert clock.sleeps == pytest.approx([0.1, 0.1])
    with pytest.raises(EndOfStream):
        cam.read()


def test_opencv_names_a_missing_video_file(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(CameraError, match="does not exist"):
        OpenCvCamera(str(tmp_path / "gone.mp4")).open()


def test_opencv_reports_a_device_that_is_not_there():
    pytest.importorskip("cv2")
    with pytest.raises(CameraError, match="cannot open"):
        OpenCvCamera("/dev/video-edgeknn-absent").open()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_without_opencv_a_video_source_says_how_to_install_it(traffic_video):
    # sys.modules["cv2"] = None makes `import cv2` fail, as on a system without it.
    result = run_python(
        "import sys; sys.modules['cv2'] = None\n"
        "from edgeknn.cameras import ReplayCamera\n"
        "from edgeknn.errors import CameraError\n"
        f"try: ReplayCamera({str(traffic_video)!r}).open()\n"
        "except CameraError as e: print(e)\n"
    )
    assert 'pip install "edgeknn[opencv]"' in result.stdout, result.stderr


def test_synthetic_and_image_replay_import_neither_opencv_nor_picamera2():
    result = run_python(
        "import sys\n"
        "from edgeknn.cameras import ReplayCamera, SyntheticCamera, make_camera, PiCamera\n"
        "from edgeknn.config import parse_config\n"
        "c = SyntheticCamera(32, 32, 0); c.open(); c.read()\n"
        f"r = ReplayCamera({str(TRAFFIC)!r}, fps=0); r.open(); r.read()\n"
        "make_camera(parse_config({'camera': {'source': 'picamera2'}}).camera)\n"
        "print(sorted(m for m in ('cv2', 'picamera2', 'libcamera') if m in sys.modules))\n"
    )
    assert result.stdout.strip() == "[]", result.stderr


# --- the Pi camera's pure parts -------------------------------------------------------------

def pack_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray, stride: int) -> np.ndarray:
    """Lay planes out as picamera2 hands a YUV420 buffer over: (h * 3/2, stride), rows padded."""
    h, w = y.shape
    buf = np.full(h * stride * 3 // 2, 77, np.uint8)  # 77: padding junk that must be ignored
    ys = buf[: h * stride].reshape(h, stride)
    ys[:, :w] = y
    plane = (h // 2) * (stride // 2)
    us = buf[h * stride: h * stride + plane].reshape(h // 2, stride // 2)
    us[:, : w // 2] = u
    vs = buf[h * stride + plane: h * stride + 2 * plane].reshape(h // 2, stride // 2)
    vs[:, : w // 2] = v
    return buf.reshape(h * 3 // 2, stride)


def subsample(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    blocks = plane.astype(np.float32).reshape(h // 2, 2, w // 2, 2)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def test_yuv420_to_rgb_matches_pil_ycbcr_on_a_real_photo():
    rgb = load_image(IMAGES / "cat.bmp")[:96, :128]
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"))
    u, v = subsample(ycc[..., 1]), subsample(ycc[..., 2])
    array = pack_yuv420(ycc[..., 0], u, v, stride=128 + 64)
    ours = yuv420_to_rgb(array, 128, 96)
    up = np.stack([ycc[..., 0], u.repeat(2, 0).repeat(2, 1), v.repeat(2, 0).repeat(2, 1)], -1)
    pil = np.asarray(Image.fromarray(up, "YCbCr").convert("RGB"))
    assert ours.shape == (96, 128, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil).max() <= 2
    assert np.abs(ours.astype(int) - rgb).mean() < 6  # chroma subsampling costs a little


@pytest.mark.parametrize("space, yuv, rgb", [
    ("smpte170m", (235, 128, 128), (255, 255, 255)),
    ("smpte170m", (16, 128, 128), (0, 0, 0)),
    ("smpte170m", (81, 90, 240), (255, 0, 0)),
    ("rec709", (63, 102, 240), (255, 0, 0)),
    ("sycc", (76, 85, 255), (254, 0, 0)),
])
def test_yuv420_to_rgb_decodes_each_colour_space(space, yuv, rgb):
    planes = [np.full((2, 2), yuv[0], np.uint8)] + [np.full((1, 1), c, np.uint8) for c in yuv[1:]]
    out = yuv420_to_rgb(pack_yuv420(*planes, stride=2), 2, 2, space)
    assert np.abs(out[0, 0].astype(int) - rgb).max() <= 2


def test_yuv420_to_rgb_refuses_an_array_of_the_wrong_shape():
    with pytest.raises(CameraError, match="expected a uint8 array of 72 rows"):
        yuv420_to_rgb(np.zeros((48, 64), np.uint8), 64, 48)


def test_libcamera_bgr888_is_already_rgb_in_numpy_and_rgb888_is_not():
    pixel = np.array([[[10, 20, 30]]], np.uint8)  # bytes in memory order
    assert main_to_rgb(pixel, "BGR888").tolist() == [[[10, 20, 30]]]
    assert main_to_rgb(pixel, "RGB888").tolist() == [[[30, 20, 10]]]
    padded = np.array([[[10, 20, 30, 255]]], np.uint8)
    assert main_to_rgb(padded, "XBGR8888").tolist() == [[[10, 20, 30]]]
    assert main_to_rgb(padded, "XRGB8888").tolist() == [[[30, 20, 10]]]
    with pytest.raises(CameraError, match="YUYV"):
        main_to_rgb(pixel, "YUYV")


@pytest.mark.parametrize("main, model, lores", [
    ((640, 480), (224, 224), (300, 224)),
    ((1920, 1080), (300, 300), (534, 300)),
    ((640, 480), (320, 240), (320, 240)),
    ((320, 240), (640, 640), None),
])
def test_lores_stream_keeps_the_main_aspect_and_covers_the_model_input(main, model, lores):
    assert lores_size(main, model) == lores


def test_picamera2_source_without_picamera2_says_how_to_install_it():
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed: this would open a real camera")
    cam = make_camera(camera_cfg(source="picamera2"), model_size=(224, 224))
    with pytest.raises(CameraError, match="python3-picamera2"):
        cam.open()


# --- the factory ----------------------------------------------------------------------------

def test_make_camera_builds_the_configured_source_unopened():
    cam = make_camera(camera_cfg(source="synthetic", width=64, height=48, fps=30))
    assert isinstance(cam, SyntheticCamera)
    cam.open()
    assert cam.read().shape == (48, 64, 3)
    assert isinstance(make_camera(camera_cfg(source="replay", path=str(TRAFFIC))), ReplayCamera)
    assert isinstance(make_camera(camera_cfg(source="opencv", path="/dev/video0")), OpenCvCamera)
    pi = make_camera(camera_cfg(source="picamera2", lores=True), model_size=(224, 224))
    assert isinstance(pi, PiCamera) and pi.model_size == (224, 224)


# --- retrying -------------------------------------------------------------------------------

def test_backoff_doubles_up_to_its_maximum():
    backoff = Backoff(1.0, 8.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_backoff_jitter_only_shortens_delays():
    backoff = Backoff(1.0, 4.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next() for _ in range(50)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 40


class States:
    def __init__(self) -> None:
        self.seen: list[tuple[bool, str]] = []
        self.changed = threading.Event()

    def __call__(self, ok: bool, message: str) -> None:
        self.seen.append((ok, message))
        self.changed.set()


def retrying(cam: FakeCamera, states: States, stop: threading.Event | None = None,
             initial: float = 0.001) -> RetryingCamera:
    return RetryingCamera(cam, stop=stop or threading.Event(), on_state=states,
                          backoff=Backoff(initial, initial * 4))


def test_retrying_camera_recovers_from_failed_reads_and_reports_it():
    cam, states = FakeCamera(), States()
    rc = retrying(cam, states)
    rc.open()
    assert frame_number(rc.read()) == 0
    cam.fail_next(2)
    assert frame_number(rc.read()) == 1
    assert states.seen == [
        (True, "fake camera: delivering frames"),
        (False, "fake camera: read failed"),
        (True, "fake camera: delivering frames"),
    ]
    assert cam.opens == 3 and cam.closes == 2


def test_retrying_camera_waits_for_a_camera_that_disappeared():
    cam, states = FakeCamera(), States()
    rc = retrying(cam, states, initial=0.01)
    rc.open()
    rc.read()
    cam.disappear()
    frames: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: frames.append(rc.read()))
    reader.start()
    assert states.changed.wait(5)
    time.sleep(0.1)  # several reopening attempts fail meanwhile
    assert frames == [] and rc.is_open is False
    cam.reappear()
    reader.join(5)
    assert len(frames) == 1
    # the outage is reported once, however many attempts it took
    assert [ok for ok, _ in states.seen] == [True, False, True]
    assert states.seen[1] == (False, "fake camera: device disappeared")


def test_retrying_camera_open_does_not_raise_when_the_camera_is_missing():
    cam, states = FakeCamera(), States()
    cam.disappear()
    rc = retrying(cam, states)
    rc.open()
    assert states.seen == [(False, "fake camera: no such device")]
    cam.reappear()
    assert frame_number(rc.read()) == 0


def test_retrying_camera_stops_waiting_as_soon_as_stop_is_set():
    cam, states, stop = FakeCamera(), States(), threading.Event()
    cam.disappear()
    rc = retrying(cam, states, stop, initial=30.0)
    rc.open()
    raised: list[BaseException] = []

    def read() -> None:
        try:
            rc.read()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            raised.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.05)
    started = time.monotonic()
    stop.set()
    reader.join(5)
    assert time.monotonic() - started < 1.0
    assert len(raised) == 1 and isinstance(raised[0], CameraStopped)


def test_retrying_camera_passes_end_of_stream_through():
    cam = FakeCamera()
    rc = retrying(cam, States())
    rc.open()
    cam.end()
    with pytest.raises(EndOfStream):
        rc.read()
    assert cam.opens == 1


def test_retrying_camera_forwards_the_model_size_hint():
    cam = FakeCamera()
    retrying(cam, States()).set_model_size(224, 224)
    assert cam.model_size == (224, 224)


def test_retrying_a_replay_of_a_damaged_image_keeps_reporting_the_file(tmp_path):
    folder = copy_traffic(tmp_path / "clip")
    (folder / "0003.bmp").write_bytes(b"garbage")
    states = States()
    rc = RetryingCamera(ReplayCamera(folder, fps=0), stop=threading.Event(), on_state=states,
                        backoff=Backoff(0.001, 0.002))
    rc.open()
    for _ in range(4):  # 0001, 0002, (0003 fails, reopen) 0001, 0002
        rc.read()
    assert states.seen[1][0] is False and "0003.bmp" in states.seen[1][1]
