"""The outbox: messages waiting for the broker, sent most important first (pure).

Three kinds of message, in the order they leave:

* **replies** to commands: never dropped.  Their number is bounded by the
  commands that arrive, which the command queue bounds (every command gets
  exactly one reply, ``busy`` when the queue is full); :data:`MAX_REPLIES`
  only guards against a broker that delivers but never acknowledges.
* **state** (retained: status, state, classes, stats): only the newest value of
  a topic matters, so a newer one replaces the queued one.  It leaves in the
  order it was made, interleaved with replies.
* **bulk** (predictions, detections, snapshots): worth little once old.  At
  most ``max_bulk`` wait (the oldest is dropped first), and any older than
  ``max_age`` seconds is dropped when its turn comes instead of being
  replayed to subscribers as if it were news.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the outbox is pure; only its type names paho's
    from paho.mqtt.properties import Properties

MAX_REPLIES = 10_000
BULK_MAX_AGE = 5.0  # seconds: a prediction older than this is history, not news


class Kind(IntEnum):
    BULK = 0
    STATE = 1
    REPLY = 2


@dataclass(frozen=True, eq=False)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None = None  # CorrelationData of a reply
    kind: Kind = Kind.BULK
    made: float = field(default=0.0, compare=False)


def kind_of(retain: bool) -> Kind:
    """Retained messages are state; the rest published by the daemon are bulk."""
    return Kind.STATE if retain else Kind.BULK


class Outbox:
    """A bounded, prioritised queue of messages.  Not thread-safe: the client locks it."""

    def __init__(self, max_bulk: int, *, max_age: float = BULK_MAX_AGE,
                 max_replies: int = MAX_REPLIES, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_bulk = max_bulk
        self._max_age = max_age
        self._max_replies = max_replies
        self._clock = clock
        self._important: deque[Message] = deque()  # replies and state, in the order made
        self._bulk: deque[Message] = deque()
        self._replies = 0
        self.dropped = 0  # bulk given up because the outbox was full
        self.stale = 0  # bulk given up because it was older than max_age
        self.lost_replies = 0  # replies over MAX_REPLIES (a broker that never acknowledges)

    def __len__(self) -> int:
        return len(self._important) + len(self._bulk)

    def __bool__(self) -> bool:
        return bool(self._important or self._bulk)

    @property
    def replies(self) -> int:
        return self._replies

    def stamp(self, message: Message) -> Message:
        """The message with the time it was made (for the age of bulk)."""
        if message.made:
            return message
        return Message(message.topic, message.payload, message.qos, message.retain,
                       message.properties, message.kind, self._clock())

    def put(self, message: Message, *, first: bool = False) -> bool:
        """Queue a message (``first``: at the head of its kind, as when paho gave it back).

        Returns False if it was dropped on arrival."""
        message = self.stamp(message)
        if message.kind == Kind.BULK:
            if self._max_bulk <= 0:
                self.dropped += 1
                return False
            while len(self._bulk) >= self._max_bulk:
                self._bulk.popleft()
                self.dropped += 1
            (self._bulk.appendleft if first else self._bulk.append)(message)
            return True
        if message.kind == Kind.REPLY:
            if self._replies >= self._max_replies:
                self.lost_replies += 1
                return False
            self._replies += 1
        else:  # state: the newer value replaces the queued one
            for old in [m for m in self._important if m.kind == Kind.STATE and m.topic == message.topic]:
                if first:
                    return True  # a newer value is already waiting
                self._important.remove(old)
        (self._important.appendleft if first else self._important.append)(message)
        return True

    def pop(self) -> Message | None:
        """The next message to send: replies and state first, then fresh bulk."""
        if self._important:
            message = self._important.popleft()
            if message.kind == Kind.REPLY:
                self._replies -= 1
            return message
        now = self._clock()
        while self._bulk:
            message = self._bulk.popleft()
            if now - message.made <= self._max_age:
                return message
            self.stale += 1
        return None

    def clear(self) -> int:
        """Forget everything; returns how many messages were waiting."""
        count = len(self)
        self._important.clear()
        self._bulk.clear()
        self._replies = 0
        return count
