"""Tell systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

For a ``Type=notify`` service systemd puts a unix datagram socket's address
in ``NOTIFY_SOCKET``: a file path, or an abstract name written with a leading
``@``.  Each datagram is newline-separated ``NAME=value`` assignments:
``READY=1`` when start-up is done, ``STATUS=`` for ``systemctl status``,
``WATCHDOG=1`` as a keep-alive when the unit sets ``WatchdogSec=``,
``RELOADING=1`` and ``STOPPING=1`` around a reload and at shutdown.

Outside systemd (a shell, the tests, Docker) ``NOTIFY_SOCKET`` is unset and
every method does nothing, so the daemon calls them unconditionally.  A
failed send never raises: the daemon must not stop because its supervisor
cannot be told something; systemd's own timeouts notice the silence.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to the socket named in ``environ`` (default ``os.environ``).

    ``pid`` is this process's id (default ``os.getpid()``), compared with
    ``WATCHDOG_PID``.  Safe to use from several threads.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None):
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_interval = _watchdog_interval(env, os.getpid() if pid is None else pid)
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._failing = False

    @property
    def is_enabled(self) -> bool:
        """Whether there is a service manager to tell; False makes every method a no-op."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """One line for ``systemctl status``, e.g. what is being loaded or the frame rate."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """Keep-alive: call at least every :meth:`watchdog_interval` seconds."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """A reload begins; send :meth:`ready` when it is done.

        systemd >= 253 pairs the message with the reload request by
        ``MONOTONIC_USEC`` and, for ``Type=notify-reload``, ignores a
        ``RELOADING=1`` without it; older versions ignore the extra field.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun, so systemd does not take the silence that follows for a hang."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog_interval(self) -> float | None:
        """Seconds between :meth:`watchdog` calls (half of ``WatchdogSec=``), or None if not asked.

        None also when ``WATCHDOG_PID`` names another process: the watchdog
        was set for it, and a child that inherited the environment must not
        feed it.
        """
        return self._watchdog_interval

    def notify(self, *assignments: str) -> bool:
        """Send ``NAME=value`` assignments in one datagram; True if it was sent."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode()
        try:
            with self._lock:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto(message, self._address)
        except OSError as exc:
            # Once per run of failures: a watchdog ping every 15 s into a
            # missing socket would otherwise fill the journal.
            if not self._failing:
                log.warning(
                    "cannot notify systemd at %s: %s (further failures are not logged)",
                    _printable(self._address),
                    exc,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd at %s works again", _printable(self._address))
        self._failing = False
        return True

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    # A newline would end the assignment and let the rest be read as another.
    return ("STATUS=" + " ".join(text.splitlines()),)


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        # Linux abstract namespace: the name is the address after a NUL byte.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    # systemd >= 254 may also pass vsock: addresses, to VMs; not ours.
    log.warning("NOTIFY_SOCKET=%r is not a unix socket path or @name; not notifying systemd", value)
    return None


def _printable(address: str) -> str:
    return "@" + address[1:] if address.startswith("\0") else address


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    try:
        if watchdog_pid and int(watchdog_pid) != pid:
            return None
        interval = int(usec)
    except ValueError:
        log.warning(
            "WATCHDOG_USEC=%r WATCHDOG_PID=%r are not numbers; not feeding the watchdog",
            usec,
            watchdog_pid,
        )
        return None
    if interval <= 0:
        return None
    # Half the timeout, as sd_watchdog_enabled(3) advises, so one late ping
    # is not a restart.
    return interval / 2 / 1_000_000
