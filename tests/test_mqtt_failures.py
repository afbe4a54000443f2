"""How connection failures are named (pure: no broker)."""

from __future__ import annotations

import logging
import socket

from edgeknn.mqtt.failures import OnceLog, connect_error, refused_login


def test_each_failure_is_one_warning_and_its_repeats_are_debug(caplog):
    once = OnceLog(logging.getLogger("edgeknn.mqtt"))
    with caplog.at_level(logging.DEBUG, logger="edgeknn.mqtt"):
        for _ in range(3):
            once.warn("broker down")
        once.warn("login refused")
        once.reset()  # connected again: the next failure is news
        once.warn("broker down")
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [("WARNING", "broker down"), ("DEBUG", "broker down"), ("DEBUG", "broker down"),
                      ("WARNING", "login refused"), ("WARNING", "broker down")]


def test_an_unreachable_broker_names_the_address_and_the_settings():
    message = connect_error(ConnectionRefusedError(111, "Connection refused"), "pi:1883", tls=False)
    assert message == ("nothing accepts connections at pi:1883; is the MQTT broker running? "
                       "(mqtt.host, mqtt.port)")


def test_an_unknown_host_names_mqtt_host():
    message = connect_error(socket.gaierror(-2, "Name or service not known"), "nohost:1883", tls=False)
    assert message.startswith("cannot resolve the MQTT broker's host in nohost:1883")
    assert message.endswith("check mqtt.host")


def test_a_refused_login_names_the_user_but_never_a_password():
    message = refused_login("Not authorized", "pi:1883", "kitchen")
    assert "as user 'kitchen' (Not authorized)" in message
    assert "mqtt.password" in message
