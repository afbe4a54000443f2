"""sd_notify against real unix datagram sockets standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import pytest

from edgeknn.service.systemd import Notifier


@pytest.fixture
def manager(tmp_path):
    """A datagram socket in tmp_path, where systemd's notify socket would be."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, {"NOTIFY_SOCKET": str(path)}


@pytest.fixture
def notifier(manager):
    notifier = Notifier(manager[1])
    yield notifier
    notifier.close()


def received(manager) -> list[str]:
    return manager[0].recv(4096).decode().split("\n")


def test_ready_sends_ready_and_status(manager, notifier):
    assert notifier.ready("watching camera 0")
    assert received(manager) == ["READY=1", "STATUS=watching camera 0"]


def test_status_sends_one_status_line(manager, notifier):
    notifier.status("loading model\nsecond line")
    assert received(manager) == ["STATUS=loading model second line"]


def test_watchdog_sends_keep_alive(manager, notifier):
    notifier.watchdog()
    assert received(manager) == ["WATCHDOG=1"]


def test_stopping_sends_stopping(manager, notifier):
    notifier.stopping()
    assert received(manager) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_time(manager, notifier):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic = received(manager)
    assert reloading == "RELOADING=1"
    name, value = monotonic.split("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


def test_abstract_socket_receives_messages():
    name = f"edgeknn-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        try:
            assert notifier.ready()
        finally:
            notifier.close()
        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.is_enabled
    assert not notifier.ready("up")
    assert not notifier.watchdog()


def test_missing_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="edgeknn.service.systemd"):
        assert not notifier.ready()
        assert not notifier.watchdog()
    notifier.close()
    assert len(caplog.records) == 1
    assert "gone" in caplog.text


def test_unsupported_socket_address_disables_notifying(caplog):
    notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.is_enabled
    assert "vsock" in caplog.text


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
    ids=["usec", "our-pid", "other-pid", "unset", "zero", "not-a-number"],
)
def test_watchdog_interval_is_half_the_timeout_when_it_is_ours(environ, interval):
    assert Notifier(environ, pid=4242).watchdog_interval() == interval


def test_watchdog_pid_defaults_to_this_process():
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(environ).watchdog_interval() == 1.0
