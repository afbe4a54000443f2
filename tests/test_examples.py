"""The examples in examples/ use the topics and entity ids edgeknn really has."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from edgeknn.config import parse_config
from edgeknn.mqtt.discovery import device_config
from edgeknn.mqtt.topics import Topics
from edgeknn.service.homeassistant import describe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KITCHEN = Topics.for_device("kitchen")


def test_the_node_red_flow_listens_and_commands_on_real_topics():
    nodes = json.loads((EXAMPLES / "node-red-flow.json").read_text())
    by_id = {n["id"]: n for n in nodes}
    assert len(by_id) == len(nodes)
    mqtt_nodes = [n for n in nodes if n["type"] in ("mqtt in", "mqtt out")]
    assert {by_id[n["broker"]]["type"] for n in mqtt_nodes} == {"mqtt-broker"}
    assert {n["topic"] for n in mqtt_nodes if n["type"] == "mqtt in"} == {KITCHEN.event, KITCHEN.cmd_result}
    assert {n["topic"] for n in mqtt_nodes if n["type"] == "mqtt out"} == {KITCHEN.command("add")}
    for node in nodes:
        for output in node.get("wires", []):
            assert all(target in by_id for target in output), node["id"]
    teach = next(n for n in nodes if n["type"] == "inject")
    assert json.loads(teach["payload"])["label"] == "cat"


def test_the_automation_triggers_on_the_recognised_entity_of_the_kitchen_camera():
    automation = yaml.safe_load((EXAMPLES / "homeassistant-automation.yaml").read_text())
    config = parse_config({"device_id": "kitchen"}, "example")
    recognised = device_config(describe(config, "kitchen"), KITCHEN, [])["cmps"]["recognised"]
    [trigger] = automation["triggers"]
    assert trigger["entity_id"] == recognised["default_entity_id"] == "event.kitchen_recognised"
    assert "event_type == 'cat'" in automation["conditions"][0]["value_template"]
