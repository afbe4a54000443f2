"""A private mosquitto on a free loopback port, for the demo, the benchmark and the tests.

Never used by the service: on a device, the broker is whatever config names.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edgeknn.errors import EdgeKnnError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class LocalBroker:
    """``start()`` and ``stop()`` may be repeated; the port stays the same.

    ``config`` replaces the default ``allow_anonymous true``: lines for the
    loopback listener (password file, ACL, TLS...).
    """

    def __init__(self, workdir: Path | None = None, *, config: str = "allow_anonymous true\n") -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgeknn-broker-")
            workdir = Path(self._tmp.name)
        self.conf = workdir / "mosquitto.conf"
        self.workdir = workdir
        # As root mosquitto would switch to its own user, which cannot read files
        # in the test's private directories (TLS keys, password files).
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{run_as}persistence false\nlistener {self.port} 127.0.0.1\n{config}"
            # room for a burst of commands or replies to one slow client
            "max_packet_size 20000000\nmax_queued_messages 10000\nlog_type error\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise EdgeKnnError("mosquitto is not installed: apt-get install mosquitto")
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    message = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    self.stop()
                    raise EdgeKnnError(f"mosquitto exited at start: {message.strip()}") from None
                time.sleep(0.05)
        self.stop()
        raise EdgeKnnError(f"mosquitto did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(timeout=10)
            if self.proc.stderr:
                self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word (its sessions with it)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.stop()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
