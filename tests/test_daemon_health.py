"""The daemon tells the truth when the camera, the model or the GPIO fail.

End to end: the real embedder and store, a real mosquitto, a notify socket
that records what systemd would be told.  The failures are made the way they
happen on a device: a camera read that blocks forever, an embedder that raises
on every frame (a USB Coral unplugged mid-run), no GPIO library that works.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from dataclasses import replace
from typing import Any

import pytest
from conftest import ScriptedCamera, make_config, wait_until
from gpiozero.pins.mock import MockFactory
from test_daemon import CAT, DOG, command, predictions, reply_to

from edgeknn.cameras import ReplayCamera
from edgeknn.errors import ModelError
from edgeknn.service.daemon import Daemon
from edgeknn.service.systemd import Notifier
from edgeknn.vision.engines import embedder_from_config

FAST = {"pipeline": {"prediction_interval": 0, "stats_interval": 1, "stall_timeout": 2.0, "max_frame_age": 1.0,
                     "max_inference_failures": 5}}


class HangingCamera(ScriptedCamera):
    """Delivers frames until ``hang()``; then a read blocks, as one stuck in a driver call does."""

    name = "hanging camera"

    def __init__(self) -> None:
        super().__init__(CAT, DOG)
        self.hung = threading.Event()
        self.released = threading.Event()

    def hang(self) -> None:
        self.hung.set()

    def read(self):
        if self.hung.is_set():
            self.released.wait()
        return super().read()


class Systemd:
    """The notify socket: records every datagram the daemon sends."""

    def __init__(self, tmp_path) -> None:
        self.path = str(tmp_path / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def notifier(self) -> Notifier:
        # WatchdogSec=2: the daemon pings every second.
        return Notifier({"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": "2000000"})

    def count(self, text: str) -> int:
        return sum(text in m for m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def start(tmp_path, mosquitto):
    started: list[tuple[Daemon, threading.Thread]] = []
    systemd = Systemd(tmp_path)

    def make(source, *, pin_factory: Any = "mock", open_embedder=embedder_from_config, **sections) -> Daemon:
        config = make_config(tmp_path, mosquitto, **{**FAST, **sections})
        daemon = Daemon(config, camera=source, notifier=systemd.notifier(), open_embedder=open_embedder,
                        pin_factory=MockFactory() if pin_factory == "mock" else pin_factory)
        daemon.systemd = systemd
        daemon.start()
        loop = threading.Thread(target=daemon.wait, daemon=True)
        loop.start()
        started.append((daemon, loop))
        return daemon

    yield make
    for daemon, loop in started:
        daemon.stop()
        loop.join(5)
        daemon.notifier.close()
    systemd.close()


def states(listener):
    return [m.json() for m in listener.on("edgeknn/testpi/state")]


def test_a_hung_camera_read_is_reported_within_10_s_and_starves_the_watchdog(start, listen):
    watch = listen("edgeknn/testpi/#")
    camera = HangingCamera()
    daemon = start(camera)
    wait_until(lambda: len(predictions(watch)) >= 3, what="predictions")
    wait_until(lambda: daemon.systemd.count("WATCHDOG=1") >= 2, what="watchdog pings while frames flow")
    camera.hang()
    try:
        wait_until(lambda: states(watch) and states(watch)[-1]["camera"].startswith("failed: no frame"), 10,
                   "state to say the camera stopped delivering")
        assert states(watch)[-1]["status"].startswith("camera: failed: no frame for over 2 s")
        pings = daemon.systemd.count("WATCHDOG=1")
        wait_until(lambda: any("camera: failed" in m for m in daemon.systemd.messages), 10, "STATUS= with the failure")
        threading.Event().wait(3)  # three watchdog intervals
        assert daemon.systemd.count("WATCHDOG=1") == pings
    finally:
        camera.released.set()


def test_adds_and_snapshots_refuse_the_frame_from_before_the_hang(start, listen):
    watch = listen("edgeknn/testpi/#")
    camera = HangingCamera()
    daemon = start(camera)
    wait_until(lambda: daemon.slot.latest is not None, what="a first frame")
    camera.hang()
    try:
        wait_until(lambda: daemon.health.frame_age() and daemon.health.frame_age() > 1.5, what="a stale frame")
        command(watch, "add", {"id": "stale-add", "label": "cat"})
        command(watch, "snapshot", {"id": "stale-snap"})
        add, snap = reply_to(watch, "stale-add"), reply_to(watch, "stale-snap")
        assert add["ok"] is False and "no new camera frame" in add["error"]
        assert snap["ok"] is False and "older than 1 s" in snap["error"]
        assert len(daemon.engine.store) == 0
    finally:
        camera.released.set()


def test_fps_falls_to_zero_when_nothing_is_processed(start, listen):
    watch = listen("edgeknn/testpi/#")
    camera = HangingCamera()
    start(camera)
    wait_until(lambda: any(m.json()["fps"] > 0 for m in watch.on("edgeknn/testpi/stats")), what="fps > 0")
    camera.hang()
    try:
        wait_until(lambda: watch.on("edgeknn/testpi/stats")[-1].json()["fps"] == 0, 10, "fps 0")
    finally:
        camera.released.set()


class FailingEmbedder:
    """A real embedder whose every inference fails, as with a USB Coral unplugged mid-run."""

    def __init__(self, real, backend: str) -> None:
        self._real = real
        self.info = type(real.info)(**{**real.info.__dict__, "backend": backend})

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def embed(self, image):
        raise ModelError(f"embedder ({self.info.backend}) failed to run: USB transfer error")


def test_an_embedder_failing_on_every_frame_on_the_cpu_exits_non_zero(start, listen, caplog):
    opened = []

    def open_embedder(config, models):
        opened.append(config.accelerator)
        return FailingEmbedder(embedder_from_config(config, models), "cpu")

    with caplog.at_level(logging.ERROR):
        daemon = start(ScriptedCamera(CAT, DOG), open_embedder=open_embedder)
        wait_until(lambda: daemon.stop_event.is_set(), 60, "the daemon to give up")
    failures, last = re.fullmatch(r"inference: (\d+) inference failures in a row, the last: (.*)",
                                  daemon.failure).groups()
    assert int(failures) >= 5 and last == "embedder (cpu) failed to run: USB transfer error"
    assert opened == ["auto"]
    assert any("exiting so that systemd restarts the service" in r.getMessage() for r in caplog.records)


def test_an_edge_tpu_failing_on_every_frame_falls_back_to_the_cpu_and_predicts_again(start, listen, caplog):
    watch = listen("edgeknn/testpi/#")
    opened = []

    def open_embedder(config, models):
        opened.append(config.accelerator)
        real = embedder_from_config(replace(config, accelerator="cpu"), models)
        return real if config.accelerator == "cpu" else FailingEmbedder(real, "edgetpu")

    with caplog.at_level(logging.ERROR):
        daemon = start(ScriptedCamera(CAT, DOG), open_embedder=open_embedder)
        wait_until(lambda: daemon.backend == "cpu", 60, "the CPU fallback")
    assert opened == ["auto", "cpu"]
    before = len(predictions(watch))
    wait_until(lambda: len(predictions(watch)) >= before + 3, what="predictions again")
    assert not daemon.stop_event.is_set()
    wait_until(lambda: states(watch)[-1]["backend"] == "cpu", what="state to say cpu")
    [line] = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert re.fullmatch(r"inference: \d+ inference failures in a row, the last: embedder \(edgetpu\) failed to "
                        r"run: USB transfer error; falling back to the CPU model", line)


def test_without_a_working_gpio_library_it_runs_on_says_why_and_takes_commands(start, listen):
    watch = listen("edgeknn/testpi/#")
    daemon = start(ScriptedCamera(CAT, DOG), pin_factory=None, gpio={"pin_factory": ""})
    wait_until(lambda: states(watch) and states(watch)[-1]["gpio"].startswith("failed: "), what="gpio failed")
    assert states(watch)[-1]["gpio"].startswith("failed: no GPIO library works here")
    wait_until(lambda: len(predictions(watch)) >= 3, what="predictions")
    command(watch, "add", {"id": "no-gpio", "label": "cat"})
    assert reply_to(watch, "no-gpio")["ok"] is True
    assert not daemon.stop_event.is_set()


def test_one_bad_file_in_six_in_a_replay_folder_does_not_flap_the_state(start, listen, tmp_path, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, photo in enumerate(CAT[:2] + DOG[:2] + CAT[2:]):
        (folder / f"{i}{photo.suffix}").write_bytes(photo.read_bytes())
    (folder / "5.bmp").write_bytes(b"not an image")  # the sixth: fails, the camera is reopened
    watch = listen("edgeknn/testpi/#")
    with caplog.at_level(logging.WARNING):
        daemon = start(ReplayCamera(folder, fps=10, loop=True),
                       camera={"retry_initial": 0.2, "retry_max": 0.5})
        wait_until(lambda: len(predictions(watch)) >= 5, what="predictions")
        threading.Event().wait(8)  # a dozen passes over the bad file
    assert {s["status"] for s in states(watch)} == {"ok"}  # announced at start and on connecting, never failed
    assert daemon.health.summary() == "ok"
    bad = [r for r in caplog.records if "5.bmp" in r.getMessage()]
    assert len(bad) == 1, [r.getMessage() for r in bad]  # said once, then counted
