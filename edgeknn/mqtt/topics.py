"""The topic layout: every topic edgeknn publishes or listens on, under one base.

    <base>/status        online | offline, retained (offline is also the Last Will)
    <base>/state         camera and backend health, retained
    <base>/prediction    one JSON per classified frame
    <base>/classes       {label: example count}, retained
    <base>/stats         fps, latencies, backend, store size, retained
    <base>/snapshot      the current frame as JPEG bytes
    <base>/detections    one JSON per detected frame
    <base>/event         {"event_type": label or "unknown", "confidence"} when the label changes
    <base>/cmd/<verb>    requests: add, remove, clear, rename, snapshot
    <base>/cmd/result    the replies (unless a request names an MQTT v5 response topic)

The base is ``edgeknn/<device_id>`` unless configured.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from edgeknn.errors import ConfigError

RESULT_LEVEL = "result"


def _check_level(level: str, what: str) -> None:
    if not level:
        raise ConfigError(f"{what}: empty topic level; remove the doubled or edge '/'")
    for ch in level:
        if ch in "+#":
            raise ConfigError(f"{what}: {ch!r} is an MQTT wildcard and may not appear in a topic")
        if unicodedata.category(ch).startswith("C"):
            raise ConfigError(f"{what}: contains a control character (U+{ord(ch):04X})")


def validate_base(base: str, what: str = "mqtt.base_topic") -> str:
    """Return a base topic unchanged if usable, else raise ConfigError naming the problem."""
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{what}: must be a non-empty topic such as 'edgeknn/kitchen'")
    if base.startswith("$"):
        raise ConfigError(f"{what}: {base!r} starts with '$', which brokers reserve ($SYS)")
    for level in base.split("/"):
        _check_level(level, f"{what} {base!r}")
    return base


def validate_device_id(device_id: str, what: str = "device_id") -> str:
    """A device id is one topic level: no '/', wildcards or control characters."""
    if not isinstance(device_id, str) or not device_id:
        raise ConfigError(f"{what}: must be a non-empty name such as 'kitchen'")
    if "/" in device_id:
        raise ConfigError(f"{what}: {device_id!r} contains '/'; it must be one topic level")
    _check_level(device_id, f"{what} {device_id!r}")
    return device_id


@dataclass(frozen=True)
class Topics:
    """All topic strings under one base topic (validated on construction)."""

    base: str

    def __post_init__(self) -> None:
        validate_base(self.base)

    @classmethod
    def for_device(cls, device_id: str, base_topic: str | None = None) -> Topics:
        """``base_topic`` if given, else ``edgeknn/<device_id>``."""
        if base_topic:
            return cls(base_topic)
        return cls(f"edgeknn/{validate_device_id(device_id)}")

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def prediction(self) -> str:
        return f"{self.base}/prediction"

    @property
    def classes(self) -> str:
        return f"{self.base}/classes"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def detections(self) -> str:
        return f"{self.base}/detections"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd/{RESULT_LEVEL}"

    @property
    def cmd_wildcard(self) -> str:
        return f"{self.base}/cmd/+"

    def command(self, verb: str) -> str:
        return f"{self.base}/cmd/{verb}"

    def verb_from_topic(self, topic: str) -> str | None:
        """The verb of a command topic, or None if the topic is not a command.

        ``<base>/cmd/result`` matches the subscription wildcard but carries
        replies, so it is not a command: answering it would loop forever.
        """
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        verb = topic[len(prefix):]
        if not verb or "/" in verb or verb == RESULT_LEVEL:
            return None
        return verb
