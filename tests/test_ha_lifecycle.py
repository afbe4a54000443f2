"""When Home Assistant is told about the camera: on connect, on class changes, after it restarts."""

from __future__ import annotations

import json

from conftest import IMAGES, ScriptedCamera, wait_until

from edgeknn.config import HomeAssistantConfig
from edgeknn.mqtt import RecordingPublisher
from edgeknn.mqtt.discovery import DeviceDescription
from edgeknn.mqtt.topics import Topics
from edgeknn.service.homeassistant import HomeAssistantLink

TOPICS = Topics("edgeknn/kitchen")
DEVICE = DeviceDescription(node="kitchen", name="kitchen")
CONFIG_TOPIC = "homeassistant/device/kitchen/config"


class Timers:
    """A scheduler whose timers run when the test says so."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object, list[bool]]] = []

    def __call__(self, delay, action):
        cancelled = [False]
        self.pending.append((delay, action, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True
        return Handle()

    def run_all(self) -> None:
        pending, self.pending = self.pending, []
        for _, action, cancelled in pending:
            if not cancelled[0]:
                action()


def make_link(classes, **options):
    options.setdefault("snapshot_interval", HomeAssistantConfig().snapshot_interval)
    publisher, timers, sent = RecordingPublisher(), Timers(), []
    link = HomeAssistantLink(publisher, TOPICS, DEVICE, classes=lambda: dict(classes),
                             resend_states=lambda: sent.append("states"),
                             snapshot=lambda: sent.append("snapshot"), schedule=timers,
                             delay=lambda: 3.0, **options)
    return link, publisher, timers, sent


def components(publisher):
    message = publisher.last(CONFIG_TOPIC)
    assert message.retain
    return json.loads(message.payload)["cmps"]


def test_a_removed_class_is_sent_as_stubs_and_a_renamed_one_keeps_its_keys():
    classes = {"cat": 1, "dog": 2}
    link, publisher, _, _ = make_link(classes)
    link.publish_config()
    assert components(publisher)["class_1_teach"]["name"] == "Teach cat"
    classes.pop("dog")
    classes["kitten"] = classes.pop("cat")
    link.publish_config()
    cmps = components(publisher)
    assert cmps["class_1_teach"]["name"] == "Teach kitten"
    assert cmps["class_2_teach"] == {"p": "button"}


def test_home_assistant_coming_online_brings_the_config_and_then_the_states():
    link, publisher, timers, sent = make_link({"cat": 1})
    link.home_assistant_status(b"online", retained=False)
    link.home_assistant_status(b"online", retained=False)  # twice: still one re-announcement
    assert publisher.on(CONFIG_TOPIC) == [] and [t[0] for t in timers.pending] == [3.0, 3.0]
    timers.run_all()
    assert len(publisher.on(CONFIG_TOPIC)) == 1
    assert sent == ["states", "snapshot"]


def test_offline_and_retained_status_messages_are_ignored():
    link, _, timers, _ = make_link({})
    link.home_assistant_status(b"offline", retained=False)
    link.home_assistant_status(b"online", retained=True)
    assert timers.pending == []


def test_label_changes_refresh_the_snapshot_at_a_bounded_rate():
    now = [100.0]
    link, _, _, sent = make_link({}, snapshot_interval=10.0, clock=lambda: now[0])
    for t in (100.0, 101.0, 109.0, 110.5, 111.0):
        now[0] = t
        link.label_changed()
    assert sent == ["snapshot", "snapshot"]


# ----- the daemon with a real broker --------------------------------------------

CAT = [IMAGES / "imprinting" / f for f in ("cat_train_0.bmp", "cat_test_0.bmp")]


def test_the_service_announces_itself_and_each_new_class_before_the_class_list(running, listen):
    watch = listen("#")
    daemon = running(ScriptedCamera(CAT, CAT), homeassistant={"prefix": "ha", "snapshot_interval": 0})
    config_topic = "ha/device/testpi/config"
    first = watch.wait_for(config_topic)[0]
    assert "class_1_teach" not in first.json()["cmps"]
    assert listen(config_topic).wait_for(config_topic)[0].retain  # a Home Assistant starting later sees it
    watch.send("edgeknn/testpi/cmd/add", json.dumps({"label": "cat"}).encode())
    wait_until(lambda: any("class_1_teach" in m.json()["cmps"] for m in watch.on(config_topic)),
               what="a config with the new class")
    wait_until(lambda: any(m.json() == {"cat": 1} for m in watch.on("edgeknn/testpi/classes")),
               what="the class list with cat")
    order = [m.topic for m in watch.seen if m.topic in (config_topic, "edgeknn/testpi/classes")]
    with_cat = next(i for i, m in enumerate(watch.on(config_topic)) if "class_1_teach" in m.json()["cmps"])
    classes_with_cat = [i for i, m in enumerate(watch.seen)
                        if m.topic == "edgeknn/testpi/classes" and m.json() == {"cat": 1}]
    config_index = [i for i, m in enumerate(watch.seen) if m.topic == config_topic][with_cat]
    assert classes_with_cat and config_index < classes_with_cat[0], order
    wait_until(lambda: watch.on("edgeknn/testpi/event"), what="an event when cat is recognised")
    assert watch.on("edgeknn/testpi/event")[0].json()["event_type"] == "cat"

    before = len(watch.on(config_topic))
    watch.send("ha/status", b"online")
    wait_until(lambda: len(watch.on(config_topic)) > before, timeout=10, what="the config after HA's online")
    assert daemon.homeassistant is not None


def test_with_discovery_off_nothing_is_announced(running, listen):
    watch = listen("#")
    running(ScriptedCamera(CAT, CAT), homeassistant={"enabled": False})
    watch.wait_for("edgeknn/testpi/stats")
    assert not [m for m in watch.seen if m.topic.startswith("homeassistant/")]


def test_ha_remove_deletes_the_retained_config_and_leaves_the_service_status_alone(running, listen, tmp_path):
    from conftest import make_config  # noqa: F401  (the same broker settings as the service)

    from edgeknn.cli import main

    daemon = running(ScriptedCamera(CAT, CAT))
    config_topic = "homeassistant/device/testpi/config"
    listen(config_topic).wait_for(config_topic)
    m = daemon.config.mqtt
    path = tmp_path / "config.toml"
    path.write_text(f'device_id = "testpi"\n[mqtt]\nhost = "{m.host}"\nport = {m.port}\n')
    assert main(["ha", "remove", "--config", str(path)]) == 0
    later = listen("#")
    later.wait_for("edgeknn/testpi/status", b"online")  # retained, and still online
    assert later.on(config_topic) == []  # no retained config left: Home Assistant deletes the device


def test_classes_removed_while_the_service_was_stopped_are_removed_from_home_assistant():
    classes = {"cat": 1, "dog": 2}
    old, old_publisher, _, _ = make_link(classes)
    old.publish_config()
    retained = old_publisher.last(CONFIG_TOPIC).payload
    classes.pop("dog")  # e.g. `edgeknn store remove` while the service was stopped
    link, publisher, _, _ = make_link(classes)
    link.publish_config()
    link.retained_config(retained, retained=True)
    assert components(publisher)["class_2_sees"] == {"p": "binary_sensor"}
    sent = len(publisher.on(CONFIG_TOPIC))
    link.retained_config(publisher.last(CONFIG_TOPIC).payload, retained=False)  # our own, read back
    link.retained_config(b"", retained=True)  # after `edgeknn ha remove`
    assert len(publisher.on(CONFIG_TOPIC)) == sent  # nothing new: no loop


def test_every_config_is_sent_once_more_after_a_burst_of_changes_settles():
    classes = {"cat": 1}
    link, publisher, timers, _ = make_link(classes)
    link.publish_config()
    classes["dog"] = 2
    link.publish_config()  # a second change before the first settled: one re-send, of the latest
    assert len(publisher.on(CONFIG_TOPIC)) == 2
    timers.run_all()
    assert len(publisher.on(CONFIG_TOPIC)) == 3
    assert "class_2_teach" in components(publisher)
    assert timers.pending == []  # the re-send is not re-sent


DOG = [IMAGES / "imprinting" / f for f in ("dog_train_0.bmp", "dog_test_0.bmp")]


def test_a_change_of_label_sends_a_snapshot_for_the_image_entity(running, listen):
    from edgeknn.images import load_image

    watch = listen("#")
    camera = ScriptedCamera(CAT, DOG)
    daemon = running(camera, homeassistant={"snapshot_interval": 1.0})
    daemon.teacher.add("cat", image=load_image(CAT[0]))
    daemon.teacher.add("dog", image=load_image(DOG[0]))
    watch.wait_for("edgeknn/testpi/event")
    camera.switch()
    wait_until(lambda: any(m.json()["event_type"] == "dog" for m in watch.on("edgeknn/testpi/event")),
               what="the dog recognised")
    snapshots = watch.wait_for("edgeknn/testpi/snapshot")
    assert snapshots[-1].payload[:2] == b"\xff\xd8"  # a JPEG
