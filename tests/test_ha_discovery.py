"""Home Assistant discovery payloads: golden JSON, and templates no label can break."""

import json
import os
import re
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edgeknn.errors import LabelError
from edgeknn.labels import LABEL_PATTERN, validate_label
from edgeknn.mqtt.discovery import (
    ClassEntry,
    DeviceDescription,
    config_payload,
    device_config,
    expire_after,
    jinja_string,
    node_id,
)
from edgeknn.mqtt.payloads import event_payload
from edgeknn.mqtt.topics import Topics

GOLDEN = Path(__file__).parent / "golden"
TOPICS = Topics("edgeknn/kitchen")
DEVICE = DeviceDescription(node="kitchen", name="Kitchen camera", expire_after=10, detector=True,
                           sw_version="0.1.0")
NASTY = [
    'say "hi"',
    "it's",
    "Käse 猫 🐈",
    "{{ states('sun.sun') }}",
    "{% raw %}x{% endraw %}",
    "a\\u0022b",
    "{#",
    "}} {{",
]
CLASSES = [ClassEntry(1, "cat"), *(ClassEntry(n, label) for n, label in enumerate(NASTY, 2))]


def check_golden(name: str, payload: bytes) -> None:
    path = GOLDEN / name
    pretty = json.dumps(json.loads(payload), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("EDGEKNN_UPDATE_GOLDEN"):
        path.write_text(pretty, encoding="utf-8")
    assert pretty == path.read_text(encoding="utf-8"), f"{name} differs; review and set EDGEKNN_UPDATE_GOLDEN=1"


def render(template: str, value_json: object) -> str:
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value_json=value_json, value=json.dumps(value_json))


def test_the_device_config_matches_the_golden_file():
    check_golden("ha_discovery_kitchen.json", config_payload(DEVICE, TOPICS, CLASSES[:2], removed=[7]))


def test_nasty_labels_match_the_golden_file():
    check_golden("ha_discovery_nasty_labels.json", config_payload(DEVICE, TOPICS, CLASSES))


@pytest.mark.parametrize("label", ["cat", *NASTY])
def test_a_label_in_a_template_is_one_string_literal(label):
    literal = jinja_string(label)
    assert re.fullmatch(r'"[A-Za-z0-9 _\\-]*"', literal), literal  # no quote, brace or % inside
    assert render("{{ " + literal + " }}", {}) == label


@pytest.mark.parametrize("entry", CLASSES, ids=lambda e: e.label)
def test_each_class_binary_sensor_is_on_only_for_its_own_label(entry):
    cmps = device_config(DEVICE, TOPICS, CLASSES)["cmps"]
    template = cmps[f"class_{entry.id}_sees"]["val_tpl"]
    for other in CLASSES:
        seen = render(template, {"label": other.label, "unknown": False})
        assert seen == ("ON" if other is entry else "OFF")
    assert render(template, {"label": entry.label, "unknown": True}) == "OFF"


@pytest.mark.parametrize("entry", CLASSES, ids=lambda e: e.label)
def test_each_examples_sensor_reads_its_own_count(entry):
    cmps = device_config(DEVICE, TOPICS, CLASSES)["cmps"]
    counts = {c.label: 10 + c.id for c in CLASSES}
    assert render(cmps[f"class_{entry.id}_examples"]["val_tpl"], counts) == str(10 + entry.id)
    assert render(cmps[f"class_{entry.id}_examples"]["val_tpl"], {}) == "0"


def test_the_teach_button_sends_its_label_as_json():
    cmps = device_config(DEVICE, TOPICS, CLASSES)["cmps"]
    for entry in CLASSES:
        button = cmps[f"class_{entry.id}_teach"]
        assert button["cmd_t"] == "edgeknn/kitchen/cmd/add"
        assert json.loads(button["pl_prs"]) == {"label": entry.label}


def test_sees_reports_the_label_or_none():
    sees = device_config(DEVICE, TOPICS, CLASSES)["cmps"]["sees"]
    assert render(sees["val_tpl"], {"label": 'say "hi"', "unknown": False}) == 'say "hi"'
    assert render(sees["val_tpl"], {"label": "cat", "unknown": True}) == "None"
    assert render(sees["val_tpl"], {"label": None, "unknown": True}) == "None"
    assert sees["ops"] == [c.label for c in CLASSES]


def test_with_no_classes_sees_is_a_plain_sensor():
    sees = device_config(DEVICE, TOPICS, [])["cmps"]["sees"]
    assert "ops" not in sees and "dev_cla" not in sees  # Home Assistant refuses empty options


def test_a_rename_keeps_every_key_and_unique_id_and_changes_the_names():
    before = device_config(DEVICE, TOPICS, [ClassEntry(3, "cat")])["cmps"]
    after = device_config(DEVICE, TOPICS, [ClassEntry(3, "kitten")])["cmps"]
    assert before.keys() == after.keys()
    for key in before:
        assert before[key]["uniq_id"] == after[key]["uniq_id"]
    assert (before["class_3_teach"]["name"], after["class_3_teach"]["name"]) == ("Teach cat", "Teach kitten")


def test_a_removed_class_is_sent_as_platform_stubs():
    cmps = device_config(DEVICE, TOPICS, [ClassEntry(1, "cat")], removed=[2])["cmps"]
    assert cmps["class_2_sees"] == {"p": "binary_sensor"}
    assert cmps["class_2_teach"] == {"p": "button"}
    assert cmps["class_2_examples"] == {"p": "sensor"}
    assert "name" in cmps["class_1_sees"]


def test_the_event_types_are_the_classes_and_unknown():
    event = device_config(DEVICE, TOPICS, CLASSES[:2])["cmps"]["recognised"]
    assert event["evt_typ"] == ["cat", 'say "hi"', "unknown"]
    assert json.loads(event_payload(None, 0.1)) == {"event_type": "unknown", "confidence": 0.1}
    assert json.loads(event_payload("cat", 0.87654)) == {"event_type": "cat", "confidence": 0.8765}


def test_the_objects_sensor_exists_only_with_the_detector():
    assert "objects" in device_config(DEVICE, TOPICS, [])["cmps"]
    plain = DeviceDescription(node="kitchen", name="Kitchen camera")
    assert "objects" not in device_config(plain, TOPICS, [])["cmps"]


@pytest.mark.parametrize(("device_id", "node"), [
    ("kitchen", "kitchen"), ("Pi 4/ström", "Pi_4_str_m"), ("cam-1_a", "cam-1_a"), ("///", "edgeknn"),
])
def test_the_node_id_is_a_safe_topic_level(device_id, node):
    assert node_id(device_id) == node


def test_expire_after_allows_three_missed_predictions():
    assert expire_after(1.0) == 10
    assert expire_after(5.0) == 15
    assert expire_after(0.0) == 10


@pytest.mark.parametrize("label", [
    "cat", "a", "Käse", "a b", "x" * 64, 'say "hi"', "{{ x }}", "猫",
    " a", "a ", "a/b", "a+b", "a#b", "x" * 65, "", "a\tb", "a\x7fb",
])
def test_the_teach_form_pattern_agrees_with_the_label_rule(label):
    try:
        validate_label(label)
        valid = True
    except LabelError:
        valid = False
    assert bool(re.match(LABEL_PATTERN, label)) == valid


def test_the_device_links_to_its_own_page_when_it_has_one():
    with_page = DeviceDescription(node="kitchen", name="Kitchen camera", configuration_url="http://kitchen:8080/")
    assert device_config(with_page, TOPICS, [])["dev"]["cu"] == "http://kitchen:8080/"
    assert "cu" not in device_config(DEVICE, TOPICS, [])["dev"]
