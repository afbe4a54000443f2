"""MqttClient against a real mosquitto, watched by a real MQTT v5 client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from command_target import Store
from conftest import MQTT_TOPICS, TIMEOUT, connected, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeknn.config import MqttTlsConfig
from edgeknn.errors import ConfigError
from edgeknn.tools.devbroker import free_port

ROOT = Path(__file__).resolve().parent.parent
TOPICS = MQTT_TOPICS


# -- status: online, offline, Last Will ------------------------------------------------

def test_online_is_published_retained_on_connect(make_client, listen):
    connected(make_client())
    status = listen(TOPICS.status).wait_for(TOPICS.status)
    assert status[0].payload == b"online" and status[0].retain


def test_stop_publishes_offline_retained(make_client, listen):
    client = connected(make_client())
    listen(TOPICS.status).wait_for(TOPICS.status, b"online")
    client.stop()
    assert not client.is_connected
    status = listen(TOPICS.status).wait_for(TOPICS.status)
    assert status[-1].payload == b"offline" and status[-1].retain


LONE_CLIENT = """
import sys, time
from edgeknn.config import MqttConfig
from edgeknn.mqtt.client import MqttClient
from edgeknn.tools.devbroker import free_port
from edgeknn.mqtt.topics import Topics
client = MqttClient(MqttConfig(host=sys.argv[1], port=int(sys.argv[2])), Topics("test/dev"))
client.start()
time.sleep(60)
"""


def test_the_broker_announces_offline_when_the_process_dies(mosquitto, listen):
    broker = mosquitto
    watcher = listen(TOPICS.status)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", LONE_CLIENT, broker.host, str(broker.port)],
                            env=env, cwd=ROOT)
    try:
        watcher.wait_for(TOPICS.status, b"online")
        proc.kill()  # no DISCONNECT: the broker must send the Last Will
        proc.wait(TIMEOUT)
        watcher.wait_for(TOPICS.status, b"offline")
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
    status = listen(TOPICS.status).wait_for(TOPICS.status)
    assert status[-1].payload == b"offline" and status[-1].retain


# -- commands ----------------------------------------------------------------------

def test_a_command_is_answered_on_cmd_result(make_client, listen):
    store = Store()
    connected(make_client(store))
    watcher = listen()
    watcher.send(TOPICS.command("add"), b'{"label": "dog", "id": "r1"}')
    reply = watcher.wait_for(TOPICS.cmd_result)[0].json()
    assert reply == {"id": "r1", "cmd": "add", "ok": True, "counts": {"cat": 2, "dog": 1}}


def test_a_refused_command_is_answered_too(make_client, listen):
    connected(make_client(Store()))
    watcher = listen()
    watcher.send(TOPICS.command("remove"), b'{"label": "unicorn", "id": 7}')
    reply = watcher.wait_for(TOPICS.cmd_result)[0].json()
    assert reply == {"id": 7, "cmd": "remove", "ok": False, "error": "no class 'unicorn'"}


def test_a_v5_response_topic_gets_the_reply_with_its_correlation_data(make_client, listen):
    connected(make_client(Store()))
    watcher = listen()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = "nodered/replies/42"
    properties.CorrelationData = b"\x00corr-1"
    watcher.send(TOPICS.command("snapshot"), b"", properties=properties)
    reply = watcher.wait_for("nodered/replies/42")[0]
    assert reply.correlation == b"\x00corr-1"
    assert reply.json() == {"id": None, "cmd": "snapshot", "ok": True, "bytes": 0}
    assert watcher.on(TOPICS.cmd_result) == []


def test_a_response_topic_with_wildcards_falls_back_to_cmd_result(make_client, listen):
    connected(make_client(Store()))
    watcher = listen()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = "replies/#"
    watcher.send(TOPICS.command("snapshot"), b'{"id": 1}', properties=properties)
    assert watcher.wait_for(TOPICS.cmd_result)[0].json()["ok"] is True


def test_a_retained_command_is_refused_not_carried_out(make_client, listen):
    store = Store()
    careless = listen()
    careless.send(TOPICS.command("clear"), b'{"confirm": true, "id": "c"}', retain=True)
    connected(make_client(store))
    reply = careless.wait_for(TOPICS.cmd_result)[0].json()
    assert reply["id"] == "c" and reply["ok"] is False
    assert reply["error"].startswith("retained command ignored")
    assert store.counts == {"cat": 2}


def test_messages_on_cmd_result_are_not_answered(make_client, listen):
    connected(make_client(Store()))
    watcher = listen()
    watcher.send(TOPICS.cmd_result, b'{"id": "someone else"}')
    watcher.send(TOPICS.command("snapshot"), b'{"id": "after"}')
    watcher.wait_for(TOPICS.cmd_result, count=2)
    ids = [m.json()["id"] for m in watcher.on(TOPICS.cmd_result)]
    assert ids == ["someone else", "after"]


def test_an_oversized_command_is_refused_before_it_is_queued(make_client, listen):
    connected(make_client(Store()))
    watcher = listen()
    watcher.send(TOPICS.command("add"), b" " * (10 * 1024 * 1024))
    reply = watcher.wait_for(TOPICS.cmd_result)[0].json()
    assert reply["error"] == "payload is 10485760 bytes; limit 8388608"


def test_commands_beyond_the_backlog_are_refused_as_busy(make_client, listen):
    store = Store()
    store.release = threading.Event()
    connected(make_client(store, command_backlog=1))
    watcher = listen()
    watcher.send(TOPICS.command("add"), b'{"label": "a", "id": 1}')
    assert store.entered.wait(TIMEOUT)  # the worker is busy with the first
    watcher.send(TOPICS.command("add"), b'{"label": "b", "id": 2}')  # waits in the backlog
    watcher.send(TOPICS.command("add"), b'{"label": "c", "id": 3}')  # no room
    busy = watcher.wait_for(TOPICS.cmd_result)[0].json()
    assert busy["id"] == 3 and busy["error"] == "busy: too many commands waiting (limit 1); try again later"
    store.release.set()
    replies = [m.json() for m in watcher.wait_for(TOPICS.cmd_result, count=3)]
    assert [(r["id"], r["ok"]) for r in replies] == [(3, False), (1, True), (2, True)]


# -- the broker goes away --------------------------------------------------------------

def test_start_and_publish_never_fail_without_a_broker(make_client):
    client = make_client(port=free_port(), max_queued=3)  # nothing listens there
    client.start()
    for i in range(5):
        client.publish("test/dev/prediction", str(i))
    client.publish("test/dev/classes", b"{}", qos=1, retain=True)
    assert not client.is_connected
    assert client.queued == 4  # the three newest predictions, and the classes
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 3


def test_unreadable_tls_files_are_a_config_error_naming_the_key(make_client, tmp_path):
    client = make_client(tls=MqttTlsConfig(enabled=True, ca=str(tmp_path / "missing-ca.pem")))
    with pytest.raises(ConfigError, match=r"^mqtt\.tls: cannot load ca='.*missing-ca\.pem'"):
        client.start()


def test_publishing_on_a_wildcard_topic_is_a_bug_not_a_message(make_client):
    client = make_client()
    for topic in ("a/+/b", "a/#", ""):
        with pytest.raises(ValueError, match="wildcards"):
            client.publish(topic, b"x")
    with pytest.raises(ValueError, match="qos"):
        client.publish("a/b", b"x", qos=3)
    assert client.queued == 0


def test_predictions_are_bounded_and_never_push_out_retained_state(make_client):
    client = make_client(max_queued=3)  # never started: everything waits in the outbox
    client.publish(TOPICS.classes, b'{"old": 1}', retain=True)
    for i in range(4):
        client.publish(TOPICS.prediction, str(i))
    client.publish(TOPICS.classes, b'{"new": 1}', retain=True)
    # p0 went for room, the old classes were replaced: p1, p2, p3 and the new classes remain
    assert client.queued == 4
    assert client.dropped == 1


def test_after_a_broker_restart_it_reconnects_reannounces_and_delivers_the_backlog(
        mosquitto, make_client, listen):
    broker = mosquitto
    store = Store()
    hooks: list[float] = []
    watcher_ready = threading.Event()

    def on_connected() -> None:
        hooks.append(time.monotonic())
        if len(hooks) > 1:  # hold the backlog until the test's listener is back
            watcher_ready.wait(TIMEOUT)
        client.publish(TOPICS.classes, json.dumps(store.counts), qos=1, retain=True)

    client = make_client(store, max_queued=5, on_connected=on_connected)
    connected(client)
    assert len(hooks) == 1 and client.reconnects == 0

    broker.stop()
    wait_until(lambda: not client.is_connected, what="the client to notice the broker left")
    store.counts["dog"] = 1
    client.publish(TOPICS.classes, b'{"stale": 1}', qos=1, retain=True)
    for i in range(7):
        client.publish(TOPICS.prediction, f"p{i}".encode())
    assert client.queued == 6 and client.dropped == 2  # five predictions, the classes

    broker.start()
    watcher = listen()
    watcher_ready.set()
    wait_until(lambda: client.is_connected, what="the client to reconnect")
    assert len(hooks) == 2 and client.reconnects == 1
    status = watcher.wait_for(TOPICS.status)
    assert status[-1].payload == b"online"

    predictions = watcher.wait_for(TOPICS.prediction, count=5)
    assert [m.payload for m in predictions] == [b"p2", b"p3", b"p4", b"p5", b"p6"]
    classes = watcher.wait_for(TOPICS.classes)
    assert [m.json() for m in classes] == [{"cat": 2, "dog": 1}]  # the stale one never went out

    watcher.send(TOPICS.command("remove"), b'{"label": "dog", "id": "after"}')
    assert watcher.wait_for(TOPICS.cmd_result)[0].json()["ok"] is True
    assert client.queued == 0
