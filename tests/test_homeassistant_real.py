"""edgeknn against a real Home Assistant core: the device appears with no YAML and is taught
from Home Assistant.

Home Assistant runs from its own cached venv (see tests/hass.py; the first run
builds it, about 3 minutes), on a free loopback port, against a real mosquitto; it is
onboarded through its onboarding API and given the MQTT integration through the
config-flow API, like a user clicking through the UI.  Everything is checked through
its REST and websocket APIs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from conftest import IMAGES, MODELS, wait_until
from gpiozero.pins.mock import MockFactory
from hass import HassUnavailable, HomeAssistant, venv_python
from paho.mqtt.enums import CallbackAPIVersion

from edgeknn.cameras.base import Pacer
from edgeknn.config import parse_config
from edgeknn.images import load_image
from edgeknn.service.daemon import Daemon
from edgeknn.tools.devbroker import LocalBroker, free_port, mosquitto_path

pytestmark = pytest.mark.slow

CAT = [IMAGES / "imprinting" / f for f in ("cat_train_0.bmp", "cat_test_0.bmp")]
DOG = [IMAGES / "imprinting" / f for f in ("dog_train_0.bmp", "dog_test_0.bmp")]
HA_WAIT = 60.0  # Home Assistant sets platforms up on first use; generous, never asserted on
NASTY = 'Vogel "x" {{ states(\'sun.sun\') }} ✓'
EXAMPLE_AUTOMATION = Path(__file__).resolve().parent.parent / "examples" / "homeassistant-automation.yaml"
# The example automation, run for real: the "light" is an input_boolean here.
EXTRA_CONFIG = """automation: !include automations.yaml
input_boolean:
  kitchen_light:
    name: Kitchen light
"""


class ShowingCamera:
    """Plays whichever photos it was last told to show, in a loop."""

    name = "showing camera"

    def __init__(self, photos, fps: float = 5.0) -> None:
        self._photos = [load_image(p) for p in photos]
        self._pacer = Pacer(fps)
        self.reads = 0

    def show(self, photos) -> None:
        self._photos = [load_image(p) for p in photos]

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self):
        self._pacer.wait()
        photos = self._photos
        self.reads += 1
        return photos[self.reads % len(photos)]


def example_automation() -> list:
    """examples/homeassistant-automation.yaml for this device, turning on the input_boolean."""
    automation = yaml.safe_load(EXAMPLE_AUTOMATION.read_text())
    automation["triggers"][0]["entity_id"] = "event.hatest_recognised"
    automation["actions"] = [{"action": "input_boolean.turn_on",
                              "target": {"entity_id": "input_boolean.kitchen_light"}}]
    return [automation]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """mosquitto, an onboarded Home Assistant with MQTT, and edgeknn with discovery on."""
    try:
        python = venv_python()
    except HassUnavailable as exc:
        pytest.skip(f"no Home Assistant on this machine: {exc}")
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (./dev.sh test does)")
    tmp = tmp_path_factory.mktemp("ha")
    broker = LocalBroker(tmp)
    broker.start()
    hass = HomeAssistant(python, tmp / "ha-config")
    hass.config_dir.mkdir(parents=True)
    (hass.config_dir / "automations.yaml").write_text(yaml.safe_dump(example_automation()))
    daemon = None
    try:
        seconds = hass.start(extra_config=EXTRA_CONFIG)
        hass.onboard()
        hass.add_mqtt(broker.host, broker.port)
        print(f"\nHome Assistant answered {seconds:.1f} s after start")
        config = parse_config({
            "device_id": "hatest",
            "store": {"path": str(tmp / "store.db")},
            "models": {"dir": str(tmp / "models"), "mirror": str(MODELS)},
            "embedder": {"threads": 1},
            "classifier": {"smoothing": 3},
            "pipeline": {"prediction_interval": 1.0, "stats_interval": 1},
            "mqtt": {"host": broker.host, "port": broker.port, "keepalive": 5},
            "detector": {"enabled": True, "max_rate": 1.0, "threads": 1},
            "homeassistant": {"snapshot_interval": 2.0},
            "web": {"host": "127.0.0.1", "port": free_port()},
        }, "test config")
        camera = ShowingCamera(CAT)
        daemon = Daemon(config, camera=camera, pin_factory=MockFactory())
        daemon.start()
        threading.Thread(target=daemon.wait, daemon=True).start()
        daemon.teacher.add("cat", 1)  # the camera shows the cat
        daemon.teacher.add("dog", image=load_image(DOG[0]))
        yield hass, daemon, camera, broker
    finally:
        if daemon is not None:
            daemon.stop()
        hass.stop()
        broker.close()
        if hass.log_path.exists():  # shown with -s, or when a test failed: what MQTT complained of
            complaints = [line for line in hass.log_path.read_text().splitlines()
                          if ("WARNING" in line or "ERROR" in line) and "mqtt" in line]
            print("\n".join(["Home Assistant's MQTT warnings:", *complaints] if complaints else []))


def send(broker, verb, body):
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(f"edgeknn/hatest/cmd/{verb}", json.dumps(body), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def registry(hass, class_id=None):
    """{entity_id: entry} of the device's MQTT entities (of one class, if given)."""
    entries = {e["entity_id"]: e for e in hass.mqtt_entities() if e["unique_id"].startswith("edgeknn_hatest_")}
    if class_id is None:
        return entries
    return {k: e for k, e in entries.items() if e["unique_id"].startswith(f"edgeknn_hatest_class_{class_id}_")}


def state_of(hass, entity_id):
    found = hass.state(entity_id)
    return found["state"] if found else None


def wait_state(hass, entity_id, expected):
    wait_until(lambda: state_of(hass, entity_id) == expected, timeout=HA_WAIT,
               what=f"{entity_id} == {expected!r} (now {state_of(hass, entity_id)!r})")


EXPECTED = {
    "sensor.hatest_sees", "event.hatest_recognised", "text.hatest_teach_new_class", "image.hatest_snapshot",
    "button.hatest_take_snapshot", "sensor.hatest_objects", "sensor.hatest_frame_rate",
    "sensor.hatest_inference_time", "sensor.hatest_backend", "sensor.hatest_store_size",
    "binary_sensor.hatest_camera",
    *(f"{kind}.hatest_{name}" for label in ("cat", "dog")
      for kind, name in (("binary_sensor", f"sees_{label}"), ("button", f"teach_{label}"),
                         ("sensor", f"{label}_examples"))),
}


def test_the_device_and_every_entity_appear_with_their_states(world):
    hass, daemon, camera, _ = world
    wait_until(lambda: EXPECTED <= set(registry(hass)), timeout=HA_WAIT,
               what=f"entities; missing {EXPECTED - set(registry(hass))}")
    [device] = [d for d in hass.devices() if ["mqtt", "edgeknn_hatest"] in d["identifiers"]]
    assert (device["name"], device["manufacturer"]) == ("hatest", "edgeknn")
    assert device["configuration_url"] == f"http://127.0.0.1:{daemon.config.web.port}/"  # the web page
    assert {e["device_id"] for e in registry(hass).values()} == {device["id"]}

    wait_state(hass, "sensor.hatest_sees", "cat")
    wait_state(hass, "binary_sensor.hatest_sees_cat", "on")
    assert state_of(hass, "binary_sensor.hatest_sees_dog") == "off"
    wait_until(lambda: hass.state("sensor.hatest_sees")["attributes"].get("options") == ["cat", "dog"],
               timeout=HA_WAIT, what="both classes among the options")
    wait_state(hass, "sensor.hatest_cat_examples", "1")
    wait_state(hass, "sensor.hatest_store_size", "2")
    assert state_of(hass, "sensor.hatest_backend") == "cpu"
    assert state_of(hass, "binary_sensor.hatest_camera") == "off"  # no problem
    wait_until(lambda: (state_of(hass, "sensor.hatest_objects") or "x").isdigit(), timeout=HA_WAIT,
               what="the object count")

    camera.show(DOG)  # the dog walks in: the event entity fires, the snapshot refreshes
    wait_state(hass, "sensor.hatest_sees", "dog")
    wait_until(lambda: hass.state("event.hatest_recognised")["attributes"].get("event_type") == "dog",
               timeout=HA_WAIT, what="a Recognised event for dog")
    assert hass.state("event.hatest_recognised")["attributes"]["event_types"] == ["cat", "dog", "unknown"]
    wait_until(lambda: state_of(hass, "image.hatest_snapshot") not in (None, "unknown"), timeout=HA_WAIT,
               what="a snapshot in the image entity")
    jpeg = hass.request_bytes("/api/image_proxy/image.hatest_snapshot")
    assert jpeg[:2] == b"\xff\xd8"


def test_pressing_teach_adds_one_example_of_that_class(world):
    hass, daemon, _, _ = world
    wait_until(lambda: "button.hatest_teach_cat" in registry(hass), timeout=HA_WAIT, what="the teach button")
    before = daemon.engine.store.counts()["cat"]
    hass.call_service("button", "press", {"entity_id": "button.hatest_teach_cat"})
    wait_until(lambda: daemon.engine.store.counts()["cat"] == before + 1, timeout=HA_WAIT,
               what="one more cat example")
    wait_state(hass, "sensor.hatest_cat_examples", str(before + 1))


def test_a_class_taught_from_the_text_box_and_renamed_keeps_its_entity_ids(world):
    hass, daemon, _, broker = world
    hass.call_service("text", "set_value", {"entity_id": "text.hatest_teach_new_class", "value": "bird"})
    wait_until(lambda: "bird" in daemon.engine.store.counts(), timeout=HA_WAIT, what="the class bird")
    bird = daemon.engine.store.class_ids()["bird"]
    wait_until(lambda: len(registry(hass, bird)) == 3, timeout=HA_WAIT, what="bird's three entities")
    before = registry(hass, bird)
    assert "button.hatest_teach_bird" in before

    send(broker, "rename", {"from": "bird", "to": NASTY})
    # The registry keeps the name an entity was first seen with; the state shows the new one.
    wait_until(lambda: all(NASTY in (hass.state(k) or {}).get("attributes", {}).get("friendly_name", "")
                           for k in before), timeout=HA_WAIT, what="the new names")
    after = registry(hass, bird)
    assert after.keys() == before.keys()
    assert {k: e["unique_id"] for k, e in after.items()} == {k: e["unique_id"] for k, e in before.items()}
    assert hass.state("button.hatest_teach_bird")["attributes"]["friendly_name"] == f"hatest Teach {NASTY}"
    [examples] = [k for k in after if k.startswith("sensor.")]
    wait_state(hass, examples, "1")  # the label, quotes and braces and all, inside its template


def test_a_removed_class_loses_its_entities(world):
    hass, daemon, _, broker = world
    hass.call_service("text", "set_value", {"entity_id": "text.hatest_teach_new_class", "value": "owl"})
    wait_until(lambda: "owl" in daemon.engine.store.class_ids(), timeout=HA_WAIT, what="the class owl")
    owl = daemon.engine.store.class_ids()["owl"]
    wait_until(lambda: len(registry(hass, owl)) == 3, timeout=HA_WAIT, what="owl's entities")
    send(broker, "remove", {"label": "owl"})
    wait_until(lambda: not registry(hass, owl), timeout=HA_WAIT, what="owl's entities gone")
    assert state_of(hass, "button.hatest_teach_owl") is None
    assert "button.hatest_teach_cat" in registry(hass)  # the others stay


def test_the_example_automation_turns_the_light_on_when_the_cat_comes(world):
    hass, _, camera, _ = world
    # the very photo dog was taught from: this test is about the automation, not about how
    # well two photos classify (a held-out dog photo taken for the cat would fire it again)
    camera.show(DOG[:1])
    wait_until(lambda: hass.state("event.hatest_recognised")["attributes"].get("event_type") not in ("cat", None),
               timeout=HA_WAIT, what="something other than the cat recognised")
    hass.call_service("input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_light"})
    wait_state(hass, "input_boolean.kitchen_light", "off")
    camera.show(CAT)
    wait_state(hass, "input_boolean.kitchen_light", "on")


def test_home_assistant_restarting_without_the_retained_config_gets_it_again(world):
    hass, daemon, _, broker = world
    hass.stop()
    clear = mqtt.Client(CallbackAPIVersion.VERSION2)  # e.g. a broker that lost its retained messages
    clear.connect(broker.host, broker.port)
    clear.loop_start()
    clear.publish("homeassistant/device/hatest/config", b"", qos=1, retain=True).wait_for_publish(10)
    clear.disconnect()
    clear.loop_stop()
    hass.start(extra_config=EXTRA_CONFIG)  # its birth message "online" is the only thing that brings the config back
    wait_state(hass, "sensor.hatest_store_size", str(len(daemon.engine.store)))
    wait_until(lambda: EXPECTED <= {k for k in registry(hass) if state_of(hass, k) not in (None, "unavailable")},
               timeout=HA_WAIT, what="every entity set up again")


def test_ha_remove_deletes_the_device_from_home_assistant(world, tmp_path):
    from edgeknn.cli import main

    hass, daemon, _, broker = world
    wait_until(lambda: EXPECTED <= set(registry(hass)), timeout=HA_WAIT, what="the entities")
    daemon.homeassistant.close()  # as after turning discovery off: nothing announces it again
    daemon.homeassistant = None
    path = tmp_path / "config.toml"
    path.write_text(f'device_id = "hatest"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n')
    assert main(["ha", "remove", "--config", str(path)]) == 0
    wait_until(lambda: not [d for d in hass.devices() if ["mqtt", "edgeknn_hatest"] in d["identifiers"]],
               timeout=HA_WAIT, what="the device gone from Home Assistant")
    assert registry(hass) == {}
