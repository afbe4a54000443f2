"""The recommended broker setup (deploy/mosquitto): dashboards read, only trusted clients teach."""

from __future__ import annotations

import shutil
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT, TIMEOUT, Listener, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edgeknn.config import MqttConfig
from edgeknn.mqtt.client import MqttClient
from edgeknn.mqtt.commands import handle_message
from edgeknn.mqtt.topics import Topics
from edgeknn.tools.devbroker import LocalBroker, mosquitto_path

DEPLOY = ROOT / "deploy" / "mosquitto"
TOPICS = Topics("edgeknn/kitchen")
PASSWORDS = {"kitchen": "device-secret", "dashboard": "dash-secret", "teacher": "teach-secret"}


class Counts:
    """A CommandTarget that only counts what it was told to do."""

    def __init__(self) -> None:
        self.cleared = 0

    def clear(self):
        self.cleared += 1
        return {"removed": 0}

    def snapshot(self):
        return {"bytes": 0}


def broker_lines(tmp_path) -> str:
    """edgeknn.conf as the test runs it: its own files, no listener or persistence."""
    lines = []
    for line in (DEPLOY / "edgeknn.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if not line or line.startswith("#") or key in ("listener", "persistence", "persistence_location"):
            continue
        if key == "password_file":
            line = f"password_file {tmp_path / 'passwd'}"
        elif key == "acl_file":
            line = f"acl_file {DEPLOY / 'edgeknn.acl'}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def secured(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if mosquitto_path() is None or tool is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (./dev.sh test does)")
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in PASSWORDS.items():
        subprocess.run([tool, "-b", str(passwd), user, password], check=True, capture_output=True)
    broker = LocalBroker(tmp_path, config=broker_lines(tmp_path))
    broker.start()
    yield broker
    broker.close()


@pytest.fixture
def device(secured):
    target = Counts()
    client = MqttClient(MqttConfig(host=secured.host, port=secured.port, client_id="edgeknn-kitchen",
                                     username="kitchen", password=PASSWORDS["kitchen"],
                                     reconnect_min=0.1, reconnect_max=0.5), TOPICS)
    client.on_command(lambda verb, payload: handle_message(verb, payload, target))
    client.start()
    wait_until(lambda: client.is_connected, what="the device to log in")
    client.target = target
    yield client
    client.stop(timeout=2)


def login(broker, user: str) -> Listener:
    return Listener(broker.host, broker.port, "edgeknn/#", username=user, password=PASSWORDS[user])


def test_a_dashboard_reads_what_the_device_publishes(secured, device):
    dashboard = login(secured, "dashboard")
    try:
        device.publish(TOPICS.prediction, b'{"label": "cat"}')
        assert dashboard.wait_for(TOPICS.prediction)[0].json() == {"label": "cat"}
    finally:
        dashboard.close()


def test_a_dashboard_cannot_command_but_a_trusted_client_can(secured, device):
    dashboard, teacher = login(secured, "dashboard"), login(secured, "teacher")
    try:
        dashboard.send(TOPICS.command("clear"), b'{"confirm": true, "id": "from-dashboard"}')
        teacher.send(TOPICS.command("clear"), b'{"confirm": true, "id": "from-teacher"}')
        replies = teacher.wait_for(TOPICS.cmd_result)
        assert [r.json()["id"] for r in replies] == ["from-teacher"]
        assert device.target.cleared == 1
    finally:
        dashboard.close()
        teacher.close()


def test_without_a_login_nothing_connects(secured):
    refused = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, reason, p: reason.is_failure and refused.set()
    client.connect(secured.host, secured.port)
    client.loop_start()
    try:
        assert refused.wait(TIMEOUT)
    finally:
        client.loop_stop()
