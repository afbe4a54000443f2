"""Keeping Home Assistant's picture of the camera current: when to send the discovery config.

    on connect              config, then (the daemon) classes, state, stats
    on every class change   config (new entities, new options) before ``classes``
    Home Assistant online   after 0-5 s: config again, then the current states
    label changes           a snapshot, at most every ``snapshot_interval`` s

Home Assistant subscribes to an entity's topics a moment after the entity
appears, so what the entities show comes from retained topics (classes, state,
stats) or is re-sent (a snapshot); predictions come again every interval.
The random delay after Home Assistant's ``online`` keeps many devices from
answering a restart all in the same instant.

A class that goes away keeps its ``{"p": ...}`` stubs in every config sent by
this process, so a Home Assistant that was offline when it went still deletes
its entities on reading the retained config; classes that went while the
service was stopped are found in the retained config read back on connect.  Turning discovery off, or
changing the device id, leaves the old device behind: ``edgeknn ha remove``
sends the empty retained config that deletes it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edgeknn.config import Config
from edgeknn.errors import EdgeKnnError
from edgeknn.mqtt import Publisher
from edgeknn.mqtt.discovery import (
    ONLINE,
    ClassEntry,
    DeviceDescription,
    class_ids_in,
    config_payload,
    expire_after,
    node_id,
    status_topic,
)
from edgeknn.mqtt.topics import Topics

log = logging.getLogger(__name__)

REDISCOVER_DELAY = (0.0, 5.0)  # seconds after Home Assistant's "online"
# Home Assistant (2025.4) drops the rest of a device config when it reaches a
# component still busy with the previous config (a burst of changes, or its
# first set-up of a platform), so every config is sent once more this many
# seconds after the last change; unchanged components cost it nothing.
SETTLE = 5.0
DISCOVERY_QOS = 1


class Broker(Publisher, Protocol):
    """What the link needs of the MQTT client: publish, and watch a topic."""

    def watch(self, topic: str, handler: Callable[[bytes, bool], None]) -> None: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


def start_timer(delay: float, action: Callable[[], None]) -> Cancellable:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


class HomeAssistantLink:
    """Sends the discovery config when it is needed.  ``schedule`` and ``clock`` are
    injectable so that tests run the delayed re-discovery without waiting."""

    def __init__(self, publisher: Publisher, topics: Topics, device: DeviceDescription, *,
                 classes: Callable[[], dict[str, int]], resend_states: Callable[[], None],
                 snapshot: Callable[[], object] | None, snapshot_interval: float,
                 schedule: Callable[[float, Callable[[], None]], Cancellable] = start_timer,
                 delay: Callable[[], float] = lambda: random.uniform(*REDISCOVER_DELAY),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._publisher = publisher
        self._topics = topics
        self.device = device
        self._classes = classes  # {label: stable id}, read from the store
        self._resend_states = resend_states
        self._snapshot = snapshot
        self._snapshot_interval = snapshot_interval
        self._schedule = schedule
        self._delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._known: set[int] = set()
        self._removed: set[int] = set()
        self._pending: Cancellable | None = None
        self._settle: Cancellable | None = None
        self._last_snapshot = float("-inf")

    def publish_config(self) -> None:
        """The retained device config for the classes in the store now (and again
        :data:`SETTLE` s after the last call)."""
        self._send_config()
        with self._lock:
            if self._settle is not None:
                self._settle.cancel()
            self._settle = self._schedule(SETTLE, self._settled)

    def _settled(self) -> None:
        with self._lock:
            self._settle = None
        try:
            self._send_config()
        except Exception:  # on a timer thread: log it, the next change sends again
            log.exception("re-sending the Home Assistant config failed")

    def _send_config(self) -> None:
        with self._lock:
            ids = self._classes()
            current = set(ids.values())
            self._removed |= self._known - current
            self._removed -= current
            self._known = current
            entries = [ClassEntry(class_id, label) for label, class_id in ids.items()]
            payload = config_payload(self.device, self._topics, entries, self._removed)
            self._publisher.publish(self.device.topic, payload, DISCOVERY_QOS, True)

    def retained_config(self, payload: bytes, retained: bool) -> None:
        """Our own config as the broker holds it (read on connect): classes it names that
        the store no longer has, removed while the service was stopped, become stubs."""
        with self._lock:
            stale = class_ids_in(payload) - set(self._classes().values()) - self._removed
            self._removed |= stale
        if stale:
            log.info("removing %d class(es) from Home Assistant that went while edgeknn was stopped", len(stale))
            self.publish_config()

    def home_assistant_status(self, payload: bytes, retained: bool) -> None:
        """``<prefix>/status``: after ``online`` (Home Assistant started), announce again."""
        if payload.strip() != ONLINE.encode() or retained:
            return  # a retained "online" is an old start; the config sent on connect covers it
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
            self._pending = self._schedule(self._delay(), self._rediscover)

    def _rediscover(self) -> None:
        with self._lock:
            self._pending = None
        try:
            self.publish_config()
            self._resend_states()
            self._send_snapshot()
        except Exception:  # on a timer thread: log it, the next start or change sends again
            log.exception("re-announcing to Home Assistant failed")

    def label_changed(self) -> None:
        """The recognised label changed: refresh the Snapshot entity, if not too often."""
        now = self._clock()
        if self._snapshot_interval <= 0 or now - self._last_snapshot < self._snapshot_interval:
            return
        self._last_snapshot = now
        self._send_snapshot()

    def _send_snapshot(self) -> None:
        if self._snapshot is None:
            return
        try:
            self._snapshot()
        except EdgeKnnError as exc:  # no frame yet: the image stays as it was
            log.debug("no snapshot for Home Assistant: %s", exc)

    def close(self) -> None:
        with self._lock:
            for timer in (self._pending, self._settle):
                if timer is not None:
                    timer.cancel()
            self._pending = self._settle = None


def describe(config: Config, device_id: str, configuration_url: str | None = None) -> DeviceDescription:
    """The device as the config describes it (also what ``edgeknn ha remove`` deletes);
    ``configuration_url`` is the device's own page (the web UI), linked from Home Assistant."""
    h = config.homeassistant
    return DeviceDescription(node=node_id(device_id), name=h.name or device_id, prefix=h.prefix,
                             expire_after=expire_after(config.pipeline.prediction_interval),
                             detector=config.detector.enabled, configuration_url=configuration_url)


def connect(config: Config, device_id: str, mqtt: Broker | None, topics: Topics, *,
            classes: Callable[[], dict[str, int]], resend_states: Callable[[], None],
            snapshot: Callable[[], object] | None,
            configuration_url: str | None = None) -> HomeAssistantLink | None:
    """The link for a running service, watching Home Assistant's status; None when
    discovery is off or there is no MQTT client."""
    h = config.homeassistant
    if not h.enabled or mqtt is None:
        return None
    link = HomeAssistantLink(mqtt, topics, describe(config, device_id, configuration_url),
                             classes=classes, resend_states=resend_states, snapshot=snapshot,
                             snapshot_interval=h.snapshot_interval)
    mqtt.watch(status_topic(h.prefix), link.home_assistant_status)
    mqtt.watch(link.device.topic, link.retained_config)
    return link
