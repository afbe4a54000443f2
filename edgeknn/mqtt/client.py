"""MqttClient: the paho-mqtt 2.x adapter, and the only module that imports paho.

It speaks MQTT v5 so that requests can name a ResponseTopic.  What it promises:

* ``start()`` never fails because the broker is away: paho's network thread
  keeps retrying with a backoff from ``reconnect_min`` doubling to
  ``reconnect_max``.  Only unusable settings (TLS files) raise, as ConfigError.
* ``publish()`` never blocks and never raises because the broker is away.
  While disconnected, messages wait in a bounded outbox (``max_queued``): a
  retained message replaces a queued one on the same topic; when full, the
  oldest non-retained message is dropped (and counted in ``dropped``).
* On every connect, in this order: subscribe to ``<base>/cmd/+`` (so the
  subscription survives a broker restart), publish retained ``online``, call
  the ``on_connected`` hook (the daemon re-announces classes, stats and state),
  then send the outbox.  Publishes made meanwhile, the hook's included, join the
  outbox, so subscribers see messages in the order they were made.
* The Last Will is retained ``offline``; the broker only sends it after an
  unclean disconnect, so ``stop()`` publishes ``offline`` itself and waits for
  it before disconnecting.
* Commands are carried out one at a time on a worker thread, not on paho's
  network thread (adding 100 frames takes seconds; keepalives must go on).  At
  most ``command_backlog`` wait; more are refused with a reply, as are
  oversized and retained ones (a retained ``cmd/clear`` would otherwise
  clear the store at every restart).  Every request gets one reply, on its
  ResponseTopic with its CorrelationData when given, else on ``<base>/cmd/result``.
"""

from __future__ import annotations

import logging
import queue
import threading
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgeknn.errors import CommandError, ConfigError
from edgeknn.mqtt import MqttSettings
from edgeknn.mqtt.commands import MAX_PAYLOAD_BYTES, check_size, refuse
from edgeknn.mqtt.topics import Topics

log = logging.getLogger("edgeknn.mqtt")

ONLINE = "online"
OFFLINE = "offline"

CommandHandler = Callable[[str, bytes], bytes]
"""Takes (verb, payload) and returns the reply; commands.handle_message with a target bound."""


@dataclass(frozen=True, eq=False)
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None = None


@dataclass(frozen=True)
class _Request:
    verb: str
    payload: bytes
    reply_topic: str
    correlation: bytes | None


def _check_publish_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
        raise ValueError(f"cannot publish on {topic!r}: a topic is non-empty and has no wildcards")


class MqttClient:
    """A Publisher over paho-mqtt that survives broker restarts and answers commands."""

    def __init__(self, settings: MqttSettings, topics: Topics, *,
                 on_connected: Callable[[], None] | None = None,
                 max_command_bytes: int = MAX_PAYLOAD_BYTES,
                 command_backlog: int = 64, announce_status: bool = True) -> None:
        self._settings = settings
        self._topics = topics
        self._on_connected = on_connected
        # False for a short-lived helper (edgeknn ha remove) beside a running service:
        # no online/offline and no Last Will on the service's status topic.
        self._announce_status = announce_status
        self._max_command_bytes = max_command_bytes
        self._handler: CommandHandler | None = None
        self._watched: dict[str, Callable[[bytes, bool], None]] = {}
        self._lock = threading.Lock()  # guards the outbox and the hand-over to paho
        self._outbox: deque[_Message] = deque()
        self._dropped = 0
        self._connected = False
        self._connects = 0
        self._requests: queue.Queue[_Request] = queue.Queue(maxsize=command_backlog)
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._paho: mqtt.Client | None = None

    # -- what the daemon sees ------------------------------------------------

    def on_command(self, handler: CommandHandler) -> None:
        """Route ``<base>/cmd/<verb>`` requests to ``handler`` (set before start)."""
        self._handler = handler

    def watch(self, topic: str, handler: Callable[[bytes, bool], None]) -> None:
        """Subscribe to ``topic`` on every connect and pass each message to
        ``handler(payload, retained)`` (set before start; it runs on paho's network
        thread, so it must be quick: Home Assistant's status starts a timer)."""
        self._watched[topic] = handler

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def reconnects(self) -> int:
        """Successful connections after the first."""
        return max(0, self._connects - 1)

    @property
    def queued(self) -> int:
        """Messages waiting in the outbox for the broker."""
        with self._lock:
            return len(self._outbox)

    @property
    def dropped(self) -> int:
        """Messages given up because the outbox was full (or paho refused them)."""
        with self._lock:
            return self._dropped

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Send now if connected, else keep in the bounded outbox.

        Raises ValueError only for a topic with wildcards or a QoS not 0-2 (bugs).
        """
        _check_publish_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        self._publish(_Message(topic, data, qos, retain))

    def start(self) -> None:
        """Connect in the background and keep connected; returns at once."""
        if self._paho is not None:
            return
        s = self._settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=mqtt.MQTTv5)
        client.enable_logger(logging.getLogger("edgeknn.mqtt.paho"))
        client.suppress_exceptions = True  # a bug in a callback must not end the network thread
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls.enabled:
            self._configure_tls(client)
        if self._announce_status:
            client.will_set(self._topics.status, OFFLINE, qos=s.qos.status, retain=True)
        # paho's own queue only holds QoS>0 messages in flight when the link drops.
        client.max_queued_messages_set(s.max_queued)
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._paho = client
        self._stopping.clear()
        self._worker = threading.Thread(target=self._run_commands, name="mqtt-commands",
                                        daemon=True)
        self._worker.start()
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running command, announce ``offline`` (retained), disconnect."""
        client = self._paho
        if client is None:
            return
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("an MQTT command was still running after %.0f s; not waiting", timeout)
        while True:  # exactly one reply per command: those never started are refused
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            self._reply(request, refuse(request.verb, request.payload, "not carried out: the device is stopping"))
        with self._lock:
            was_connected, self._connected = self._connected, False
            if self._outbox:
                log.info("dropping %d MQTT messages never sent to the broker", len(self._outbox))
                self._outbox.clear()
        if was_connected and self._announce_status:
            info = client.publish(self._topics.status, OFFLINE, self._settings.qos.status, True)
            try:
                info.wait_for_publish(timeout)
                if not info.is_published():
                    log.warning("the broker did not confirm 'offline' within %.0f s", timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish 'offline': %s", exc)
        # paho's network thread logs "Client is not connected" at ERROR when it
        # wakes after our disconnect; that is the stop we asked for, not a fault.
        client.disable_logger()
        if client.is_connected():
            client.disconnect()
        client.loop_stop()
        self._paho = None

    # -- the outbox ------------------------------------------------------------

    def _publish(self, message: _Message) -> None:
        with self._lock:
            if self._connected:
                self._send(message)
            else:
                self._enqueue(message)

    def _send(self, message: _Message) -> None:
        """Hand a message to paho (lock held)."""
        assert self._paho is not None
        try:
            info = self._paho.publish(message.topic, message.payload, message.qos, message.retain,
                                      message.properties)
        except ValueError as exc:  # e.g. a payload over 256 MB
            log.error("cannot publish on %s: %s", message.topic, exc)
            self._dropped += 1
            return
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0:
            self._enqueue(message)  # the link dropped under us; paho keeps only QoS>0
        elif info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("paho refused a message on %s: %s",
                        message.topic, mqtt.error_string(info.rc))
            self._dropped += 1

    def _enqueue(self, message: _Message) -> None:
        """Keep a message for later within the bound (lock held)."""
        box, limit = self._outbox, self._settings.max_queued
        if limit <= 0:  # queueing switched off
            self._dropped += 1
            return
        if message.retain:  # only the newest retained value of a topic matters
            for old in [m for m in box if m.retain and m.topic == message.topic]:
                box.remove(old)
        while len(box) >= limit:
            victim = next((m for m in box if not m.retain), None)
            if victim is None and not message.retain:
                self._dropped += 1  # everything queued is retained state; this one matters least
                return
            box.remove(victim if victim is not None else box[0])
            self._dropped += 1
        box.append(message)

    # -- paho callbacks (on paho's network thread; they must never raise) -----

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                        reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s",
                        self._settings.host, self._settings.port, reason_code)
            return
        self._connects += 1
        log.info("connected to MQTT broker %s:%d", self._settings.host, self._settings.port)
        options = SubscribeOptions(qos=self._settings.qos.commands, noLocal=True)
        client.subscribe(self._topics.cmd_wildcard, options=options)
        for topic in self._watched:  # without noLocal: our own retained config is read back too
            client.subscribe(topic, options=SubscribeOptions(qos=self._settings.qos.commands))
        if self._announce_status:
            client.publish(self._topics.status, ONLINE, self._settings.qos.status, True)
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                log.exception("the on_connected hook failed")
        with self._lock:
            pending = list(self._outbox)
            self._outbox.clear()
            self._connected = True
            for message in pending:
                self._send(message)

    def _handle_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.debug("MQTT broker %s:%d unreachable; retrying",
                  self._settings.host, self._settings.port)

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                           reason_code: ReasonCode, properties: Properties | None) -> None:
        # No lock here: paho may call this while holding its own locks.
        self._connected = False
        if not self._stopping.is_set():
            log.warning("lost MQTT broker %s:%d (%s); reconnecting",
                        self._settings.host, self._settings.port, reason_code)

    def _handle_message(self, client: mqtt.Client, userdata: Any,
                        message: mqtt.MQTTMessage) -> None:
        try:
            self._receive(message)
        except Exception:
            log.exception("dropped an MQTT message on %r", message.topic)

    # -- commands --------------------------------------------------------------

    def _receive(self, message: mqtt.MQTTMessage) -> None:
        if (watcher := self._watched.get(message.topic)) is not None:
            watcher(bytes(message.payload), bool(message.retain))
            return
        verb = self._topics.verb_from_topic(message.topic)
        if verb is None:  # <base>/cmd/result: replies, ours or another's
            return
        payload = bytes(message.payload)
        request = _Request(verb, payload, *self._reply_route(message.properties))
        try:
            check_size(payload, self._max_command_bytes)
        except CommandError as exc:
            self._reply(request, refuse(verb, b"", str(exc)))
            return
        if message.retain:
            self._reply(request, refuse(verb, payload, (
                "retained command ignored: commands must not be retained; clear it with "
                f"mosquitto_pub -r -n -t '{message.topic}'")))
            return
        try:
            self._requests.put_nowait(request)
        except queue.Full:
            self._reply(request, refuse(verb, payload, (
                f"busy: too many commands waiting (limit {self._requests.maxsize}); "
                "try again later")))

    def _reply_route(self, properties: Properties | None) -> tuple[str, bytes | None]:
        topic = getattr(properties, "ResponseTopic", None)
        correlation = getattr(properties, "CorrelationData", None)
        if topic is not None and not self._is_reply_topic(topic):
            log.warning("ignoring unusable response topic %r; replying on %s",
                        topic, self._topics.cmd_result)
            topic = None
        return topic or self._topics.cmd_result, correlation

    def _is_reply_topic(self, topic: object) -> bool:
        if not isinstance(topic, str) or not topic or topic.startswith("$"):
            return False
        if any(ch in "+#" or unicodedata.category(ch) == "Cc" for ch in topic):
            return False
        return self._topics.verb_from_topic(topic) is None  # never into a command topic

    def _run_commands(self) -> None:
        while not self._stopping.is_set():
            try:
                request = self._requests.get(timeout=0.2)
            except queue.Empty:
                continue
            self._reply(request, self._answer(request))

    def _answer(self, request: _Request) -> bytes:
        if self._handler is None:
            return refuse(request.verb, request.payload, "this device takes no commands")
        try:
            return self._handler(request.verb, request.payload)
        except Exception as exc:  # handle_message never raises; another handler might
            log.exception("the command handler failed on %s", request.verb)
            return refuse(request.verb, request.payload, f"internal error: {exc}")

    def _reply(self, request: _Request, reply: bytes) -> None:
        properties = None
        if request.correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = request.correlation
        self._publish(_Message(request.reply_topic, reply, self._settings.qos.commands, False,
                               properties))

    def _configure_tls(self, client: mqtt.Client) -> None:
        tls = self._settings.tls
        try:
            client.tls_set(ca_certs=tls.ca, certfile=tls.certfile, keyfile=tls.keyfile)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(
                f"mqtt.tls: cannot load ca={tls.ca!r} certfile={tls.certfile!r} "
                f"keyfile={tls.keyfile!r}: {exc}") from None
        if tls.insecure:
            client.tls_insecure_set(True)
