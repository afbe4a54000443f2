"""Shared fixtures: the real models and data in ../shared, and a real mosquitto."""

from __future__ import annotations  # noqa: I001 (edgeknn is imported first, on purpose)

import edgeknn  # noqa: F401  first: it sets one BLAS thread before numpy loads (its __init__)

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from edgeknn.cameras.base import Pacer
from edgeknn.config import ModelsConfig, MqttConfig, parse_config
from edgeknn.images import load_image
from edgeknn.mqtt.client import MqttClient
from edgeknn.mqtt.commands import handle_message
from edgeknn.mqtt.topics import Topics
from edgeknn.service.daemon import Daemon
from edgeknn.store import Store
from edgeknn.tools.devbroker import LocalBroker, mosquitto_path
from edgeknn.vision.fake import FakeEmbedder

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGEKNN_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
IMAGES = SHARED / "data" / "images"
DATASETS = SHARED / "data" / "datasets"


# The slow tests drive real parts (a real systemd, Home Assistant, chromium, Ansible, a
# tmpfs): each skips with its reason where the machine cannot run them.  .ci/run sets
# EDGEKNN_REQUIRE_REAL=1, where such a skip would hide a missing install step, so
# there it fails instead.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("EDGEKNN_REQUIRE_REAL") == "1" and item.get_closest_marker("slow"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"EDGEKNN_REQUIRE_REAL=1 but this real-part test skipped: {reason}"
TIMEOUT = 10.0
# the shared model files, used where they are (all present and verified: nothing is fetched)
SHARED_MODELS = ModelsConfig(dir=MODELS, mirror=str(MODELS))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own data directory and reads models from ../shared/models."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("EDGEKNN_MODEL_MIRROR", str(MODELS))
    monkeypatch.setenv("EDGEKNN_MODELS_DIR", str(home / "models"))
    monkeypatch.delenv("EDGEKNN_STORE", raising=False)
    # not the service's /etc/edgeknn/config.toml, should this machine have one
    monkeypatch.setenv("EDGEKNN_CONFIG", str(home / "no-service-config.toml"))


@pytest.fixture
def mosquitto(tmp_path):
    """A real mosquitto on a free loopback port (stop() and start() keep the port)."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (./dev.sh test does)")
    broker = LocalBroker(tmp_path)
    broker.start()
    yield broker
    broker.close()


def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)

MQTT_TOPICS = Topics("test/dev")


@pytest.fixture
def make_client(mosquitto):
    """MqttClients on the test broker (or ``broker``), answering commands from ``store``
    when one is given; every client made is stopped after the test."""
    started: list[MqttClient] = []

    def make(store=None, broker=None, port: int | None = None, **options) -> MqttClient:
        broker = broker or mosquitto
        adapter = {key: options.pop(key) for key in ("on_connected", "command_backlog", "announce_status")
                   if key in options}
        options = {"client_id": "edgeknn-test", "reconnect_min": 0.1, "reconnect_max": 0.5,
                   "keepalive": 5, **options}
        client = MqttClient(MqttConfig(host=broker.host, port=port or broker.port, **options),
                            MQTT_TOPICS, **adapter)
        if store is not None:
            client.on_command(lambda verb, payload: handle_message(verb, payload, store))
        started.append(client)
        return client
    yield make
    for client in started:
        client.stop(timeout=2)


def connected(client: MqttClient) -> MqttClient:
    client.start()
    wait_until(lambda: client.is_connected, what="the client to connect")
    return client



@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None

    def json(self) -> dict:
        return json.loads(self.payload)


class Listener:
    """A plain MQTT v5 client that records what it receives (the test's eyes and hands)."""

    def __init__(self, host: str, port: int, topic: str = "#", *, username: str | None = None,
                 password: str | None = None) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(TIMEOUT), "the listener could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        with self._lock:
            self.seen.append(Seen(message.topic, bytes(message.payload), bool(message.retain),
                                  correlation))

    def on(self, topic: str) -> list[Seen]:
        with self._lock:
            return [m for m in self.seen if m.topic == topic]

    def wait_for(self, topic: str, payload: bytes | None = None, count: int = 1) -> list[Seen]:
        def matching() -> list[Seen]:
            return [m for m in self.on(topic) if payload is None or m.payload == payload]
        wait_until(lambda: len(matching()) >= count, what=f"{count} x {topic} {payload!r}")
        return matching()

    def send(self, topic: str, payload: bytes, retain: bool = False,
             properties: Properties | None = None) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain,
                            properties=properties).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listen(mosquitto):
    """Make MQTT listeners on the test broker; all are closed after the test."""
    opened: list[Listener] = []

    def make(topic: str = "#") -> Listener:
        opened.append(Listener(mosquitto.host, mosquitto.port, topic))
        return opened[-1]
    yield make
    for listener in opened:
        listener.close()



# ----- the daemon under test: a scripted camera, mock pins, a real broker -----------

CAT_PIN, DOG_PIN, CLEAR_PIN = 17, 27, 22


class ScriptedCamera:
    """Plays the A frames in a loop until ``switch()``, then the B frames in a loop.

    ``switched_at`` is the index of the first B frame (frames are numbered from 0
    in the order they are read)."""

    name = "scripted camera"

    def __init__(self, a, b, fps: float = 20.0) -> None:
        self._a = [load_image(p) for p in a]
        self._b = [load_image(p) for p in b]
        self._pacer = Pacer(fps)
        self._switch = threading.Event()
        self.reads = 0
        self.switched_at: int | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def switch(self) -> None:
        self._switch.set()

    def read(self) -> np.ndarray:
        self._pacer.wait()
        if self._switch.is_set():
            if self.switched_at is None:
                self.switched_at = self.reads
            frames = self._b
        else:
            frames = self._a
        image = frames[self.reads % len(frames)]
        self.reads += 1
        return image


@pytest.fixture
def embedder():
    """The fake embedder (edgeknn.vision.fake); a module that needs the real one defines its own."""
    return FakeEmbedder()


@pytest.fixture
def store(tmp_path, embedder):
    """An empty store file bound to ``embedder``."""
    with Store.open(tmp_path / "store.db") as store:
        store.bind(embedder.info.fingerprint, embedder.info.dim)
        yield store


def write_service_config(path, tmp_path, mosquitto, extra=""):
    """A config file for `edgeknn run` in its own process: synthetic camera, this test's
    broker, the web page on a free loopback port; ``extra`` adds tables."""
    path.write_text(f"""
device_id = "testpi"
[store]
path = "{tmp_path / 'store.db'}"
[models]
dir = "{tmp_path / 'models'}"
mirror = "{MODELS}"
[camera]
source = "synthetic"
fps = 15
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
[web]
host = "127.0.0.1"
port = 0
[logging]
level = "info"
{extra}
""")


def make_config(tmp_path, mosquitto, **sections):
    data = {
        "device_id": "testpi",
        "store": {"path": str(tmp_path / "store.db")},
        "models": {"dir": str(tmp_path / "models"), "mirror": str(MODELS)},
        "embedder": {"threads": 1},
        "classifier": {"smoothing": 3},
        "pipeline": {"prediction_interval": 0, "stats_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "keepalive": 5,
                 "reconnect_min": 0.2, "reconnect_max": 1.0},
        "gpio": {"enabled": True, "hold_time": 5.0, "buttons": [
            {"pin": CAT_PIN, "label": "cat"}, {"pin": DOG_PIN, "label": "dog"}],
            "clear_button": {"pin": CLEAR_PIN, "hold_time": 0.5}},
        "web": {"enabled": False},  # the web tests turn it on, on a free loopback port
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data, "test config")


@pytest.fixture
def running(tmp_path, mosquitto):
    """Start a daemon with a scripted camera and mock pins; stop it afterwards."""
    started: list[Daemon] = []

    def start(camera, **sections):
        factory = MockFactory()
        daemon = Daemon(make_config(tmp_path, mosquitto, **sections), camera=camera, pin_factory=factory)
        started.append(daemon)
        daemon.start()
        daemon.factory = factory
        # the main loop (stats, watchdog, reload), which the service runs on its main thread
        daemon.main_loop = threading.Thread(target=daemon.wait, daemon=True)
        daemon.main_loop.start()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
        daemon.main_loop.join(5)
