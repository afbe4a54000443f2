"""`edgeknn config check` accepts exactly the configs the service starts with.

Each case is one config file, fed to both: the check command, and the
service's own start-up (load the file, build the Daemon, start it with a real
embedder, MQTT client and mock pins, stop it).  Every key is validated in one
place, so both must say yes, or both no naming the same key.  What only
start-up can know (a broker that is away, a pin missing on this board, a file
that cannot be read) is not config validity and is not among the cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import IMAGES, MODELS

from edgeknn.cli import main
from edgeknn.config import load_config
from edgeknn.errors import EdgeKnnError
from edgeknn.service.daemon import Daemon
from edgeknn.tools.devbroker import free_port

# (case, TOML added to a working config, the key a refusal names; None: both accept)
CASES = [
    ("the defaults", "", None),
    ("a base topic", 'mqtt.base_topic = "home/cams/k1"', None),
    ("a $SYS base topic", 'mqtt.base_topic = "$SYS/edgeknn"', "mqtt.base_topic"),
    ("a wildcard in the base topic", 'mqtt.base_topic = "home/+/k1"', "mqtt.base_topic"),
    ("a trailing slash", 'mqtt.base_topic = "home/k1/"', "mqtt.base_topic"),
    ("a doubled slash", 'mqtt.base_topic = "home//k1"', "mqtt.base_topic"),
    ("a device id", 'device_id = "kitchen-2"', None),
    ("a device id with a slash", 'device_id = "kitchen/2"', "device_id"),
    ("a device id with spaces around", 'device_id = " kitchen"', "device_id"),
    ("a 65-character device id", f'device_id = "{"k" * 65}"', "device_id"),
    ("k at its largest", "classifier.k = 100", None),
    ("k of 0", "classifier.k = 0", "classifier.k"),
    ("an unknown method", 'classifier.method = "svm"', "classifier.method"),
    ("replay with its folder", f'camera.source = "replay"\ncamera.path = "{IMAGES / "imprinting"}"', None),
    ("replay without a path", 'camera.source = "replay"', "camera.path"),
    ("two buttons", 'gpio.enabled = true\ngpio.pin_factory = "mock"\ngpio.status_led = "BOARD11"\n'
     'gpio.buttons = [{pin = 27, label = "cat", led = 5}, {pin = "GPIO22", label = "dog"}]', None),
    ("one pin named twice", 'gpio.enabled = true\ngpio.pin_factory = "mock"\ngpio.status_led = 17\n'
     'gpio.buttons = [{pin = "BOARD11", label = "cat"}]', "gpio.buttons[0].pin"),
    ("a LED on a power pin", 'gpio.enabled = true\ngpio.pin_factory = "mock"\n'
     'gpio.buttons = [{pin = 27, label = "cat", led = "BOARD2"}]', "gpio.buttons[0].led"),
    ("two buttons for one class", 'gpio.enabled = true\ngpio.pin_factory = "mock"\n'
     'gpio.buttons = [{pin = 27, label = "cat"}, {pin = 22, label = "cat"}]', "gpio.buttons[1].label"),
    ("a label with a slash", 'gpio.enabled = true\ngpio.pin_factory = "mock"\n'
     'gpio.buttons = [{pin = 27, label = "cats/dogs"}]', "gpio.buttons[0].label"),
    ("no debounce", "gpio.enabled = true\ngpio.pin_factory = \"mock\"\ngpio.bounce_time = 0", None),
    ("a zero hold time", "gpio.enabled = true\ngpio.pin_factory = \"mock\"\ngpio.hold_time = 0",
     "gpio.hold_time"),
    ("a keepalive below 5 s", "mqtt.keepalive = 4", "mqtt.keepalive"),
    ("a teach target", 'detector.teach_target = "largest_object"', None),
    ("an unknown teach target", 'detector.teach_target = "box"', "detector.teach_target"),
    ("an unknown log level", 'logging.level = "verbose"', "logging.level"),
    ("a live view of 0 frames/s", "web.stream_fps = 0", "web.stream_fps"),
    ("writes open to all", "web.anonymous_writes = true", None),
    ("a web port out of range", "web.port = 70000", "web.port"),
    ("a web host with a space", 'web.host = "my host"', "web.host"),
    ("a live view of 10 pixels", "web.stream_size = 10", "web.stream_size"),
    ("a JPEG quality of 100", "web.jpeg_quality = 100", "web.jpeg_quality"),
    ("a discovery prefix", 'homeassistant.prefix = "ha"', None),
    ("a $SYS discovery prefix", 'homeassistant.prefix = "$SYS/x"', "homeassistant.prefix"),
    ("an empty discovery prefix", 'homeassistant.prefix = ""', "homeassistant.prefix"),
    ("the detector with a label allowed", 'detector.enabled = true\ndetector.max_detections = 100\n'
     'detector.allow = ["Egyptian_Mau"]', None),
    ("the detector with 0 detections", "detector.enabled = true\ndetector.max_detections = 0",
     "detector.max_detections"),
    ("the detector with 101 detections", "detector.enabled = true\ndetector.max_detections = 101",
     "detector.max_detections"),
    ("the detector with an empty label allowed", 'detector.enabled = true\ndetector.allow = [""]',
     "detector.allow[0]"),
    ("the detector with a threshold above 1", "detector.enabled = true\ndetector.threshold = 1.5",
     "detector.threshold"),
    ("the detector with an unknown resize", 'detector.enabled = true\ndetector.resize = "stretch"',
     "detector.resize"),
    ("an unknown pin factory", 'gpio.enabled = true\ngpio.pin_factory = "abacus"', "gpio.pin_factory"),
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")  # fetched into once, shared by every case


def config_file(tmp_path: Path, models_dir: Path, extra: str) -> Path:
    """A config that starts here (no broker listening, synthetic camera, the web page on any free
    loopback port) with ``extra`` in it."""
    path = tmp_path / "config.toml"
    base = f"""store.path = "{tmp_path / 'store.db'}"
models.dir = "{models_dir}"
models.mirror = "{MODELS}"
embedder.threads = 1
mqtt.port = {free_port()}
web.host = "127.0.0.1"
web.port = 0
"""
    # a key the case sets is not set again (TOML refuses a key given twice)
    given = {line.split("=", 1)[0].strip() for line in extra.splitlines()}
    kept = [line for line in base.splitlines() if line.split("=", 1)[0].strip() not in given]
    path.write_text("\n".join([extra, *kept, ""]))
    return path


def checked(path: Path, capsys) -> list[str]:
    """What `edgeknn config check` says is wrong ([] if it says ok)."""
    code = main(["config", "check", str(path)])
    out, err = capsys.readouterr()
    assert (code == 0) == (out == f"{path}: ok\n")
    return err.splitlines()


def started(path: Path) -> list[str]:
    """What stops the service from starting ([] if it started), as `edgeknn run` would meet it."""
    try:
        daemon = Daemon(load_config(path), config_path=path)
        try:
            daemon.start()
        finally:
            daemon.stop()
    except EdgeKnnError as exc:
        return str(exc).splitlines()
    return []


@pytest.mark.parametrize("extra, key", [(extra, key) for _, extra, key in CASES],
                         ids=[case for case, _, _ in CASES])
def test_config_check_and_the_service_accept_and_refuse_the_same_configs(extra, key, tmp_path,
                                                                         models_dir, capsys):
    path = config_file(tmp_path, models_dir, extra)
    check, start = checked(path, capsys), started(path)
    if key is None:
        assert check == [] and start == []
    else:
        assert check == [f"edgeknn: error: {line}" for line in start]
        assert len(start) == 1 and start[0].startswith(f"{path}: {key}: ")
