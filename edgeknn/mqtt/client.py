"""MqttClient: the paho-mqtt 2.x adapter, and the only module that imports paho.

It speaks MQTT v5 (ResponseTopic, retain-as-published, session expiry).  It promises:

* ``start()`` never fails because the broker is away: paho retries with a
  backoff from ``reconnect_min`` doubling to ``reconnect_max``; only unusable
  TLS files raise (ConfigError).  Each distinct failure (TLS trust, host name,
  login, an ACL refusing our subscription or a publish) is one WARNING naming
  it (failures.py); paho's own chatter, and repeats, go to debug.
* ``publish()`` never blocks and never raises because the broker is away.
  Messages go through a prioritised outbox (outbox.py): replies and retained
  state before predictions, stale predictions dropped.  One sender thread
  hands them to paho, at most ``WINDOW`` unconfirmed, so paho never refuses
  (and never drops) a reply.
* A persistent session (clean_start false, ``session_expiry`` s, QoS 1
  subscription): commands sent with QoS 1 while we are away are answered when
  we are back.
* On every connect, in this order: subscribe to ``<base>/cmd/+``, publish
  retained ``online``, call ``on_connected`` (the daemon re-announces classes,
  stats and state into the outbox), then send the outbox.  The Last Will is
  retained ``offline``; ``stop()`` publishes it itself before disconnecting.
* Commands run one at a time on a worker thread, not paho's (adding 100
  frames takes seconds).  At most ``command_queue`` wait; more are answered
  ``busy``.  Oversized and retained ones are refused: with retain-as-published
  a retained ``cmd/clear`` keeps its flag live, from the broker's retained
  store and from our session (MQTT 3.1.1 has no such flag; edgeknn always
  speaks v5).  Every request gets exactly one reply, on its ResponseTopic
  with its CorrelationData when given, else on ``<base>/cmd/result``.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
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

from edgeknn.config import MqttConfig
from edgeknn.errors import CommandError, ConfigError
from edgeknn.mqtt import failures as name
from edgeknn.mqtt.commands import MAX_PAYLOAD_BYTES, check_size, refuse
from edgeknn.mqtt.outbox import Kind, Message, Outbox, kind_of
from edgeknn.mqtt.topics import Topics

log = logging.getLogger("edgeknn.mqtt")
paho_log = logging.getLogger("edgeknn.mqtt.paho")

ONLINE = "online"
OFFLINE = "offline"
WINDOW = 100  # messages handed to paho and not yet confirmed (written, or PUBACKed)

CommandHandler = Callable[[str, bytes], bytes]
"""Takes (verb, payload) and returns the reply; commands.handle_message with a target bound."""


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
    """A Publisher over paho-mqtt that survives broker restarts and answers commands.

    ``config`` is the validated ``[mqtt]`` section, used as it is; its empty
    strings mean "none" (an empty ``client_id`` lets the broker pick one, and
    then there is no persistent session; the daemon fills in ``edgeknn-<device_id>``).
    """

    def __init__(self, config: MqttConfig, topics: Topics, *,
                 on_connected: Callable[[], None] | None = None,
                 max_command_bytes: int = MAX_PAYLOAD_BYTES,
                 command_backlog: int | None = None, announce_status: bool = True) -> None:
        self._config = config
        self._topics = topics
        self._where = f"{config.host}:{config.port}"
        self._on_connected = on_connected
        # False for a short-lived helper (edgeknn ha remove) beside a running service:
        # no online/offline and no Last Will on the service's status topic.
        self._announce_status = announce_status
        self._watched: dict[str, Callable[[bytes, bool], None]] = {}
        self._max_command_bytes = max_command_bytes
        self._handler: CommandHandler | None = None
        self._lock = threading.Lock()  # guards the outbox and the in-flight table
        self._outbox = Outbox(config.max_queued)
        self._in_flight: dict[int, Message] = {}  # mid -> message paho has not confirmed
        self._confirmed: deque[tuple[int, ReasonCode]] = deque()  # (mid, reason) from on_publish
        self._wake = threading.Event()  # the sender has work
        self._session = 0  # connects so far; the sender notices a new one
        self._sender_session = 0
        self._connected = False
        self._connects = 0
        self._problems = name.OnceLog(log)
        backlog = config.command_queue if command_backlog is None else command_backlog
        self._requests: queue.Queue[_Request] = queue.Queue(maxsize=backlog)
        self._stopping = threading.Event()  # no new commands
        self._finishing = threading.Event()  # the last replies are queued: send them and end
        self._threads: list[threading.Thread] = []
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
        """Messages given up: predictions over the outbox bound or too old to send."""
        with self._lock:
            box = self._outbox
            return box.dropped + box.stale + box.lost_replies

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Send when the broker can take it; retained state before predictions.

        Raises ValueError only for a topic with wildcards or a QoS not 0-2 (bugs).
        """
        _check_publish_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        self._put(Message(topic, data, qos, retain, kind=kind_of(retain)))

    def start(self) -> None:
        """Connect in the background and keep connected; returns at once."""
        if self._paho is not None:
            return
        s = self._config
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=mqtt.MQTTv5)
        client.on_log = self._handle_log  # paho's retry chatter, at debug
        client.suppress_exceptions = True  # a bug in a callback must not end the network thread
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.tls.enabled:
            self._configure_tls(client)
        if self._announce_status:
            client.will_set(self._topics.status, OFFLINE, qos=s.qos.status, retain=True)
        client.max_queued_messages_set(0)  # our WINDOW bounds what paho holds
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)  # type: ignore[arg-type]
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.on_publish = self._handle_publish
        self._paho = client
        self._stopping.clear()
        self._finishing.clear()
        self._threads = [threading.Thread(target=self._run_commands, name="mqtt-commands", daemon=True),
                         threading.Thread(target=self._run_sender, name="mqtt-sender", daemon=True)]
        for thread in self._threads:
            thread.start()
        # A client that takes no commands (edgeknn ha remove) neither subscribes to
        # them nor keeps a session: the device alone answers, once.
        persistent = bool(s.client_id) and s.session_expiry > 0 and self._handler is not None
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = s.session_expiry if persistent else 0
        client.connect_async(s.host, s.port, keepalive=s.keepalive, clean_start=not persistent,
                             properties=properties)
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running command, send its reply, announce ``offline``, disconnect."""
        client = self._paho
        if client is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        worker, sender = self._threads
        worker.join(timeout)
        if worker.is_alive():
            log.warning("an MQTT command was still running after %.0f s; not waiting", timeout)
        while True:  # exactly one reply per command: those never started are refused
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            self._reply(request, refuse(request.verb, request.payload, "not carried out: the device is stopping"))
        self._finishing.set()
        self._wake.set()
        sender.join(max(0.1, deadline - time.monotonic()))  # it sends the replies, then ends
        with self._lock:
            was_connected, self._connected = self._connected, False
            if self._outbox:
                log.info("dropping %d MQTT messages never sent to the broker", self._outbox.clear())
        if was_connected and self._announce_status:
            info = client.publish(self._topics.status, OFFLINE, self._config.qos.status, True)
            try:
                info.wait_for_publish(timeout)
                if not info.is_published():
                    log.warning("the broker did not confirm 'offline' within %.0f s", timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish 'offline': %s", exc)
        client.on_log = None  # its "not connected" after our own disconnect is no news
        if client.is_connected():
            client.disconnect()
        client.loop_stop()
        self._paho = None

    # -- the sender: the one thread that hands messages to paho ----------------

    def _put(self, message: Message) -> None:
        with self._lock:
            if not self._outbox.put(message):
                if message.kind == Kind.REPLY:
                    log.error("a command reply on %s was dropped: %d replies wait for the broker",
                              message.topic, self._outbox.replies)
        self._wake.set()

    def _run_sender(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            with self._lock:
                self._settle()
                if self._connected:
                    self._drain()
                busy = bool(self._outbox) or bool(self._in_flight)
            if self._finishing.is_set():
                if not busy or not self._connected:
                    return
                self._wake.wait(0.05)

    def _settle(self) -> None:
        """Take in paho's confirmations; after a reconnect, requeue what paho lost (lock held)."""
        while self._confirmed:
            mid, reason = self._confirmed.popleft()
            message = self._in_flight.pop(mid, None)
            if message is not None and reason is not None and reason.is_failure:
                self._problems.warn(name.refused_publish(message.topic, reason))
        if self._sender_session != self._session:
            self._sender_session = self._session
            # paho resends unconfirmed QoS 1/2 itself; QoS 0 ones it had not yet
            # written died with the connection: replies and state go again.
            for mid, message in list(self._in_flight.items()):
                if message.qos == 0:
                    del self._in_flight[mid]
                    if message.kind != Kind.BULK:
                        self._outbox.put(message, first=True)

    def _drain(self) -> None:
        """Hand messages to paho, most important first, up to WINDOW unconfirmed (lock held)."""
        assert self._paho is not None
        while len(self._in_flight) < WINDOW:
            message = self._outbox.pop()
            if message is None:
                return
            try:
                info = self._paho.publish(message.topic, message.payload, message.qos,
                                          message.retain, message.properties)
            except ValueError as exc:  # e.g. a payload over 256 MB
                log.error("cannot publish on %s: %s", message.topic, exc)
                continue
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0:
                self._outbox.put(message, first=True)  # the link dropped under us
                self._connected = False
                return
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._in_flight[info.mid] = message  # NO_CONN with QoS>0: paho keeps it
            else:
                log.error("paho refused a message on %s: %s", message.topic, mqtt.error_string(info.rc))

    # -- paho callbacks (on paho's network thread; they must never raise) -----
    # on_publish runs with paho's locks held: it only records and wakes the sender.

    def _handle_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                        properties: Properties | None) -> None:
        self._confirmed.append((mid, reason_code))
        self._wake.set()

    def _handle_log(self, client: mqtt.Client, userdata: Any, level: int, message: str) -> None:
        paho_log.debug("%s", message)

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                        reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self._problems.warn(name.refused_login(reason_code, self._where, self._config.username))
            return
        self._problems.reset()
        self._connects += 1
        log.info("connected to MQTT broker %s%s", self._where,
                 " (session resumed)" if getattr(flags, "session_present", False) else "")
        # retain-as-published: a retained command keeps its flag on every path, so
        # it is refused; "if new": resubscribing does not replay retained ones.
        options = SubscribeOptions(qos=self._config.qos.commands, noLocal=True,
                                   retainAsPublished=True,
                                   retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        if self._handler is not None:
            client.subscribe(self._topics.cmd_wildcard, options=options)
        for topic in self._watched:  # without noLocal: our own retained config is read back too
            client.subscribe(topic, options=SubscribeOptions(qos=self._config.qos.commands))
        if self._announce_status:
            client.publish(self._topics.status, ONLINE, self._config.qos.status, True)
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:
                log.exception("the on_connected hook failed")
        self._session += 1
        self._connected = True
        self._wake.set()

    def _handle_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its "except OSError": the exception is the cause.
        self._problems.warn(name.connect_error(sys.exc_info()[1], self._where,
                                               tls=self._config.tls.enabled))

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                          reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        for reason in reason_codes:
            if reason.is_failure:
                self._problems.warn(name.refused_subscription(self._topics.cmd_wildcard, reason))

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                           reason_code: ReasonCode, properties: Properties | None) -> None:
        # No lock here: paho may call this while holding its own locks.
        was_connected, self._connected = self._connected, False
        if was_connected and not self._stopping.is_set():
            log.warning("lost MQTT broker %s (%s); reconnecting", self._where, reason_code)

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
        if self._stopping.is_set():
            self._reply(request, refuse(verb, payload, "not carried out: the device is stopping"))
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
        if topic is not None and not self._topics.is_reply_topic(topic):
            log.warning("ignoring unusable response topic %r; replying on %s",
                        topic, self._topics.cmd_result)
            topic = None
        return topic or self._topics.cmd_result, correlation

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
        self._put(Message(request.reply_topic, reply, self._config.qos.commands, False,
                          properties, Kind.REPLY))

    def _configure_tls(self, client: mqtt.Client) -> None:
        tls = self._config.tls
        try:
            # "" in the config is "none": the system's CAs, no client certificate.
            client.tls_set(ca_certs=tls.ca or None, certfile=tls.certfile or None,
                           keyfile=tls.keyfile or None)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(
                f"mqtt.tls: cannot load ca={tls.ca!r} certfile={tls.certfile!r} "
                f"keyfile={tls.keyfile!r}: {exc}") from None
        if tls.insecure:
            client.tls_insecure_set(True)
