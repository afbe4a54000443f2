"""MQTT: what edgeknn publishes, the commands it obeys, and the broker adapter.

    topics.py    the topic layout under one base topic (pure)
    payloads.py  JSON built from the result dataclasses, and the Announcer that
                 sends each payload on its topic with its QoS and retain flag (pure)
    commands.py  parse, dispatch and answer ``<base>/cmd/<verb>`` requests (pure)
    client.py    MqttClient, the paho-mqtt adapter; the only module importing paho

Everything above the adapter talks to a :class:`Publisher`, so it is tested with
the :class:`RecordingPublisher` defined here, beside the real one, without a
socket.  The adapter and the Announcer take the validated ``[mqtt]`` config
section (:class:`edgeknn.config.MqttConfig`) itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


class Publisher(Protocol):
    """Something that sends a message to the broker, now or when it can.

    ``publish`` never blocks on the network and never raises because the broker
    is away; what happens to messages while disconnected is the implementation's
    business (MqttClient queues a bounded number).
    """

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        ...


class NullPublisher:
    """A Publisher that sends nothing, for when MQTT is disabled."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        pass


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class RecordingPublisher:
    """A Publisher that keeps every message, for tests of what gets published."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Published] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        with self._lock:
            self._messages.append(Published(topic, data, qos, retain))

    @property
    def messages(self) -> list[Published]:
        with self._lock:
            return list(self._messages)

    def on(self, topic: str) -> list[Published]:
        """Every message published on one topic, oldest first."""
        return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Published:
        """The newest message on a topic; AssertionError if there is none."""
        found = self.on(topic)
        assert found, f"nothing was published on {topic!r}"
        return found[-1]
