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

import json
import unicodedata
from dataclasses import dataclass

from edgeknn.errors import ConfigError

RESULT_LEVEL = "result"
MAX_DEVICE_ID = 64


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # as the config's own messages show strings


def _control_char(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch).startswith("C"):
            return f"U+{ord(ch):04X}"
    return None


def check_base_topic(base: str) -> str:
    """``base`` unchanged if every topic edgeknn uses can start with it; else ValueError saying why.

    This is the one rule for ``mqtt.base_topic``: the config schema checks the
    key with it (so ``edgeknn config check`` refuses what start-up would), and
    :class:`Topics` applies it to whatever base it is given.
    """
    if not base:
        raise ValueError("expected a non-empty topic such as \"edgeknn/kitchen\"")
    if base.startswith("$"):
        raise ValueError(f"{_quoted(base)} starts with '$', which brokers reserve ($SYS)")
    for level in base.split("/"):
        if not level:
            raise ValueError(f"{_quoted(base)} has an empty topic level; remove the doubled or edge '/'")
        wildcard = next((c for c in "+#" if c in level), None)
        if wildcard:
            raise ValueError(f"{_quoted(base)}: {wildcard!r} is an MQTT wildcard and may not appear in a topic")
        if bad := _control_char(level):
            raise ValueError(f"{_quoted(base)} contains a control character ({bad})")
    return base


def check_device_id(device_id: str) -> str:
    """``device_id`` unchanged if it is one topic level (``edgeknn/<device_id>``); else ValueError."""
    if (not device_id or len(device_id) > MAX_DEVICE_ID or device_id != device_id.strip()
            or any(c in device_id for c in "/+#") or _control_char(device_id)):
        raise ValueError(
            f"expected one MQTT topic level: 1..{MAX_DEVICE_ID} characters, no '/', '+', '#', "
            f"control characters or surrounding spaces, got {_quoted(device_id)}"
        )
    return device_id


@dataclass(frozen=True)
class Topics:
    """All topic strings under one base topic (validated on construction)."""

    base: str

    def __post_init__(self) -> None:
        try:
            check_base_topic(self.base)
        except ValueError as exc:
            raise ConfigError(f"mqtt.base_topic: {exc}") from None

    @classmethod
    def for_device(cls, device_id: str, base_topic: str | None = None) -> Topics:
        """``base_topic`` if given, else ``edgeknn/<device_id>``."""
        if base_topic:
            return cls(base_topic)
        try:
            check_device_id(device_id)
        except ValueError as exc:
            raise ConfigError(f"device_id: {exc}") from None
        return cls(f"edgeknn/{device_id}")

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

    def is_reply_topic(self, topic: object) -> bool:
        """Whether a request's MQTT v5 ResponseTopic may be published to: a plain
        topic, not a wildcard, not ``$SYS`` and never a command topic (a loop)."""
        if not isinstance(topic, str) or not topic or topic.startswith("$"):
            return False
        if any(ch in "+#" or unicodedata.category(ch) == "Cc" for ch in topic):
            return False
        return self.verb_from_topic(topic) is None

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
