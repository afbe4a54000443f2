"""Name MQTT connection failures in words an owner can act on (pure).

paho retries forever and says little: a wrong CA, a host name mismatch, a bad
password and a broker ACL that denies our subscription all look like a
reconnect loop.  The client turns each into one WARNING naming the cause and
the setting to fix; the same failure again is logged at debug (:class:`OnceLog`),
so a broker that is down for an hour does not fill the journal.
"""

from __future__ import annotations

import logging
import socket
import ssl


def connect_error(exc: BaseException | None, where: str, *, tls: bool) -> str:
    """Why a TCP/TLS connection to ``where`` (host:port) failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return (f"TLS: the MQTT broker {where} is not trusted ({reason}); check mqtt.tls.ca "
                "and that mqtt.host is a name its certificate carries")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with the MQTT broker {where} failed ({exc.reason or exc}); "
                "check mqtt.tls (certfile, keyfile) and that the port speaks TLS")
    if tls and isinstance(exc, ConnectionResetError | BrokenPipeError):
        return (f"the MQTT broker {where} closed the TLS handshake ({exc}); check that the "
                "port speaks TLS and whether it wants a client certificate (mqtt.tls.certfile)")
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the MQTT broker's host in {where} ({exc}); check mqtt.host"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {where}; is the MQTT broker running? (mqtt.host, mqtt.port)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"the MQTT broker {where} does not answer (timeout)"
    if exc is None:
        return f"cannot connect to the MQTT broker {where}"
    return f"cannot connect to the MQTT broker {where}: {type(exc).__name__}: {exc}"


def refused_login(reason: object, where: str, username: str | None) -> str:
    """Why the broker answered CONNECT with a failure reason code."""
    who = f"as user {username!r}" if username else "without a username"
    text = str(reason)
    if text in ("Not authorized", "Bad user name or password"):
        return (f"the MQTT broker {where} refused the login {who} ({text}); check mqtt.username "
                "and mqtt.password (or EDGEKNN_MQTT_PASSWORD) against the broker's password file")
    if text == "Client identifier not valid":
        return f"the MQTT broker {where} refused our client id ({text}); set mqtt.client_id"
    return f"the MQTT broker {where} refused the connection {who} ({text})"


def refused_subscription(topic: str, reason: object) -> str:
    return (f"the MQTT broker refused our subscription to {topic} ({reason}): commands will not "
            "arrive; its ACL must let this client read that topic")


def refused_publish(topic: str, reason: object) -> str:
    return (f"the MQTT broker refused our message on {topic} ({reason}); its ACL must let this "
            "client write that topic")


class OnceLog:
    """Log each distinct problem once at WARNING; repeats go to debug until ``reset()``."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._seen: set[str] = set()

    def warn(self, message: str) -> None:
        level = logging.DEBUG if message in self._seen else logging.WARNING
        self._seen.add(message)
        self._log.log(level, "%s", message)

    def reset(self) -> None:
        """After a success: the next failure is news again."""
        self._seen.clear()
