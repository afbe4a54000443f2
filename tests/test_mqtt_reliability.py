"""MqttClient under attack and overload, against a real mosquitto (MQTT v5).

Retained commands on every delivery path, commands sent while the device is
away, a burst of 2000 commands, and the failures an owner must be told about.
"""

from __future__ import annotations

import gc
import glob
import json
import logging
import shutil
import subprocess
import time

import pytest
from command_target import Store
from conftest import MQTT_TOPICS, TIMEOUT, connected, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeknn.config import MqttConfig, MqttTlsConfig
from edgeknn.mqtt.client import MqttClient
from edgeknn.tools.devbroker import LocalBroker

TOPICS = MQTT_TOPICS
CLEAR = b'{"confirm": true, "id": "retained"}'


# -- retained commands -----------------------------------------------------------------

def test_a_retained_clear_published_live_is_refused(make_client, listen):
    store = Store()
    connected(make_client(store))
    watcher = listen()
    watcher.send(TOPICS.command("snapshot"), b'{"id": "subscribed"}')
    watcher.wait_for(TOPICS.cmd_result)  # the subscription is in place: the next is live
    watcher.send(TOPICS.command("clear"), CLEAR, retain=True)
    reply = watcher.wait_for(TOPICS.cmd_result, count=2)[1].json()
    assert reply["id"] == "retained" and reply["error"].startswith("retained command ignored")
    assert store.counts == {"cat": 2}


def test_a_retained_clear_sent_while_the_device_was_away_is_refused(make_client, listen):
    store = Store()
    client = connected(make_client(store))
    client.stop()  # a clean stop keeps the session: the broker holds commands for us
    watcher = listen()
    watcher.send(TOPICS.command("clear"), CLEAR, retain=True)
    connected(make_client(store))
    reply = watcher.wait_for(TOPICS.cmd_result)[0].json()
    assert reply["error"].startswith("retained command ignored")
    assert store.counts == {"cat": 2}


def test_a_retained_command_is_answered_once_not_at_every_restart(make_client, listen):
    watcher = listen()
    watcher.send(TOPICS.command("clear"), CLEAR, retain=True)
    connected(make_client(Store())).stop()  # refuses it once
    watcher.wait_for(TOPICS.cmd_result)
    connected(make_client(Store()))  # the session resumes: the subscription is not new
    watcher.send(TOPICS.command("snapshot"), b'{"id": "after"}')
    watcher.wait_for(TOPICS.cmd_result, count=2)
    assert [m.json()["id"] for m in watcher.on(TOPICS.cmd_result)] == ["retained", "after"]


def test_a_helper_that_takes_no_commands_beside_the_device_leaves_one_reply(make_client, listen):
    connected(make_client(Store()))
    connected(make_client(client_id="edgeknn-test-ha-remove", announce_status=False))  # no handler
    watcher = listen()
    watcher.send(TOPICS.command("snapshot"), b'{"id": "once"}')
    watcher.wait_for(TOPICS.cmd_result)
    watcher.send(TOPICS.command("snapshot"), b'{"id": "probe"}')  # replies come in order
    replies = [m.json() for m in watcher.wait_for(TOPICS.cmd_result, count=2)]
    assert [(r["id"], r["ok"]) for r in replies] == [("once", True), ("probe", True)]


# -- commands sent while the device is away ---------------------------------------------

def test_commands_sent_during_a_short_absence_are_answered_on_return(make_client, listen):
    store = Store()
    connected(make_client(store)).stop()
    watcher = listen()
    for i in range(5):
        watcher.send(TOPICS.command("add"), json.dumps({"label": "dog", "id": i}).encode())
    connected(make_client(store))
    replies = watcher.wait_for(TOPICS.cmd_result, count=5)
    assert sorted(r.json()["id"] for r in replies) == [0, 1, 2, 3, 4]
    assert store.counts["dog"] == 5


def test_with_no_session_expiry_such_commands_are_lost(make_client, listen):
    store = Store()
    connected(make_client(store, session_expiry=0)).stop()
    watcher = listen()
    watcher.send(TOPICS.command("add"), b'{"label": "dog", "id": "lost"}')
    connected(make_client(store, session_expiry=0))
    watcher.send(TOPICS.command("snapshot"), b'{"id": "after"}')
    assert [m.json()["id"] for m in watcher.wait_for(TOPICS.cmd_result)] == ["after"]
    assert "dog" not in store.counts


# -- overload ------------------------------------------------------------------------------

def test_a_burst_of_2000_commands_gets_exactly_one_reply_each(make_client, listen):
    store = Store()
    # a small outbox: replies must not count against it (paho's own limit dropped them)
    client = connected(make_client(store, command_queue=16, max_queued=10))
    watcher = listen()
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = "test/replies"
    sent = []
    for i in range(2000):
        sent.append(watcher.client.publish(TOPICS.command("add"),
                                           json.dumps({"label": f"c{i % 7}", "id": i}), qos=1,
                                           properties=properties))
        if i % 20 == 0:  # predictions go on meanwhile; they never push a reply out
            client.publish(TOPICS.prediction, b'{"label": "cat"}')
    for info in sent:
        info.wait_for_publish(TIMEOUT)
    replies = watcher.wait_for("test/replies", count=2000)
    time.sleep(0.5)  # a duplicate would arrive now
    replies = [m.json() for m in watcher.on("test/replies")]
    assert sorted(r["id"] for r in replies) == list(range(2000))
    answered_ok = [r for r in replies if r["ok"]]
    busy = [r for r in replies if not r["ok"]]
    assert all(r["error"].startswith("busy: ") for r in busy)
    assert len(answered_ok) == len(store.committed)  # nothing committed without its reply
    print(f"2000 commands: {len(answered_ok)} carried out, {len(busy)} busy")


# -- failures are named, once -----------------------------------------------------------

def warnings_from(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("edgeknn.mqtt")]


def test_a_wrong_password_is_one_warning_naming_the_login(tmp_path, make_client, caplog):
    tool = shutil.which("mosquitto_passwd")
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([tool, "-b", str(passwd), "dev", "right"], check=True)
    broker = LocalBroker(tmp_path, config=f"allow_anonymous false\npassword_file {passwd}\n")
    broker.start()
    try:
        with caplog.at_level(logging.DEBUG):
            client = make_client(broker=broker, username="dev", password="wrong-secret")
            client.start()
            wait_until(lambda: sum("refused the login" in r.getMessage() for r in caplog.records) >= 3,
                       what="three refused logins")
        warned = warnings_from(caplog)
        assert len(warned) == 1, warned
        assert "refused the login as user 'dev' (Not authorized)" in warned[0]
        assert "mqtt.password" in warned[0]
        assert not any("wrong-secret" in r.getMessage() for r in caplog.records)
    finally:
        broker.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, a broker certificate for "localhost" signed by it, and an unrelated CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed; it makes the test certificates")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=edgeknn test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.crt", "-days", "2")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
        "other.crt", "-days", "2", "-subj", "/CN=another CA")
    return d


@pytest.fixture
def tls_broker(tmp_path, certificates):
    d = certificates
    broker = LocalBroker(tmp_path, config=(
        f"allow_anonymous true\ncafile {d / 'ca.crt'}\ncertfile {d / 'broker.crt'}\n"
        f"keyfile {d / 'broker.key'}\n"))
    broker.start()
    yield broker
    broker.close()


# paho leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("ca,host,cause", [
    ("other.crt", "localhost", "self-signed certificate in certificate chain"),
    ("ca.crt", "127.0.0.1", "IP address mismatch"),
])
def test_a_tls_failure_is_one_warning_naming_the_cause(tls_broker, certificates, make_client,
                                                       caplog, ca, host, cause):
    with caplog.at_level(logging.DEBUG):
        client = MqttClient(MqttConfig(host=host, port=tls_broker.port, reconnect_min=0.1,
                                         reconnect_max=0.2,
                                         tls=MqttTlsConfig(enabled=True, ca=str(certificates / ca))),
                            TOPICS)
        client.start()
        try:
            wait_until(lambda: sum(cause in r.getMessage() for r in caplog.records) >= 3,
                       what="three failed handshakes")
        finally:
            client.stop(timeout=1)
            gc.collect()  # those sockets' warnings belong to this test, not the next
    warned = warnings_from(caplog)
    assert len(warned) == 1, warned
    assert warned[0].startswith("TLS: the MQTT broker") and cause in warned[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # paho's noise is debug


def test_the_right_ca_and_host_name_connect(tls_broker, certificates):
    client = MqttClient(MqttConfig(host="localhost", port=tls_broker.port,
                                     tls=MqttTlsConfig(enabled=True, ca=str(certificates / "ca.crt"))),
                        TOPICS)
    try:
        connected(client)
    finally:
        client.stop(timeout=1)


def dynamic_security() -> str | None:
    found = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + \
        glob.glob("/usr/lib/mosquitto_dynamic_security.so")
    return found[0] if found else None


def test_an_acl_refusing_the_command_subscription_is_one_warning(tmp_path, make_client, caplog):
    plugin = dynamic_security()
    if plugin is None:
        pytest.skip("mosquitto's dynamic security plugin is not installed; it makes a broker "
                    "that refuses subscriptions in the SUBACK")
    acl = tmp_path / "dynsec.json"
    acl.write_text(json.dumps({"clients": [], "groups": [], "roles": [], "defaultACLAccess": {
        "publishClientSend": True, "publishClientReceive": True, "subscribe": False,
        "unsubscribe": True}}))
    broker = LocalBroker(tmp_path, config=(
        f"allow_anonymous true\nplugin {plugin}\nplugin_opt_config_file {acl}\n"))
    broker.start()
    try:
        with caplog.at_level(logging.DEBUG):
            connected(make_client(Store(), broker=broker))
            wait_until(lambda: warnings_from(caplog), what="the warning")
            time.sleep(0.3)
        warned = warnings_from(caplog)
        assert warned == ["the MQTT broker refused our subscription to test/dev/cmd/+ (Not authorized): "
                          "commands will not arrive; its ACL must let this client read that topic"]
    finally:
        broker.close()
