"""The daemon as an outsider meets it: `edgeknn run` in its own process, a real broker.

Used by the fault-injection and fuzz tests and by `edgeknn bench faults|soak`:

* :class:`DaemonProcess` writes a config (replay camera, private broker, no
  GPIO), starts ``python -m edgeknn run``, kills it with SIGKILL or stops it
  with SIGTERM, and reads its RSS, peak RSS, fds and threads from /proc.
* :class:`Commander` is an MQTT v5 client that sends commands with a
  ResponseTopic and CorrelationData and collects every reply, so a test can
  tell which commands were answered, and how often.

Never imported by the service.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from PIL import Image

from edgeknn.images import IMAGE_SUFFIXES
from edgeknn.mqtt.topics import Topics
from edgeknn.tools.devbroker import LocalBroker

DEVICE = "harness"
TOPICS = Topics(f"edgeknn/{DEVICE}")
REPLIES = "harness/replies"


def make_frames(source: Path, target: Path, count: int = 8, size: tuple[int, int] = (320, 240)) -> Path:
    """A replay folder of ``count`` small frames made from the images in ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not images:
        raise FileNotFoundError(f"no images in {source} to replay")
    for i, path in enumerate(images):
        with Image.open(path) as img:
            img.convert("RGB").resize(size).save(target / f"{i:03d}.jpg", quality=85)
    return target


def image_payload(path: Path, side: int = 96) -> str:
    """A small JPEG of an image file, base64, for ``add`` with ``image``."""
    with Image.open(path) as img:
        buf = io.BytesIO()
        img.convert("RGB").resize((side, side)).save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode()


def proc_status(pid: int) -> dict[str, int]:
    """RSS and peak RSS (bytes), open fds and threads of a running process."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
            elif key == "Threads":
                values["threads"] = int(rest)
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss": values["VmRSS"], "peak_rss": values["VmHWM"], "fds": values["fds"],
            "threads": values["threads"]}


class DaemonProcess:
    """One `edgeknn run` at a time in ``workdir``; restartable on the same store."""

    def __init__(self, workdir: Path, broker: LocalBroker, frames: Path, models_mirror: Path | str, *,
                 store: Path | None = None, models_dir: Path | None = None, fps: float = 10.0,
                 extra: str = "") -> None:
        self.workdir = workdir
        self.store = store or workdir / "store.db"
        self.log_path = workdir / "daemon.log"
        self.config = workdir / "config.toml"
        self.config.write_text(f"""
device_id = "{DEVICE}"
[store]
path = "{self.store}"
[models]
dir = "{models_dir or workdir / 'models'}"
mirror = "{models_mirror}"
[embedder]
threads = 1
[camera]
source = "replay"
path = "{frames}"
fps = {fps}
[pipeline]
prediction_interval = 0.5
stats_interval = 5
[mqtt]
host = "{broker.host}"
port = {broker.port}
keepalive = 5
reconnect_min = 0.2
reconnect_max = 1.0
[web]
host = "127.0.0.1"
port = 0
password_file = "{workdir / 'web-password'}"
{extra}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child holds it)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "edgeknn", "run", "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a power cut."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Reply:
    payload: dict[str, Any]
    arrived: float


class Commander:
    """Sends commands and collects their replies by correlation id (and counts duplicates)."""

    def __init__(self, broker: LocalBroker, topics: Topics = TOPICS) -> None:
        self.topics = topics
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.replies: dict[str, list[Reply]] = {}
        self.uncorrelated: list[dict[str, Any]] = []
        self.seen: dict[str, bytes] = {}  # the last payload on each of the device's topics
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(REPLIES, 1), (f"{topics.base}/#", 0)])
        if not ready.wait(10):
            raise TimeoutError("the commander could not subscribe")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != REPLIES:
            with self._lock:
                self.seen[message.topic] = bytes(message.payload)
            return
        correlation = getattr(message.properties, "CorrelationData", None)
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = {"unparsable": message.payload.decode(errors="replace")}
        with self._lock:
            if correlation is None:
                self.uncorrelated.append(body)
            else:
                self.replies.setdefault(correlation.decode(), []).append(Reply(body, time.monotonic()))

    def send(self, verb: str, payload: bytes | str | dict[str, Any], *, topic: str | None = None,
             retain: bool = False, wait: bool = True) -> str:
        """Publish one request (QoS 1) and return its correlation id."""
        key = f"r{next(self._ids)}"
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = REPLIES
        properties.CorrelationData = key.encode()
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        with self._lock:
            self.sent[key] = time.monotonic()
        info = self.client.publish(topic or self.topics.command(verb), data, qos=1, retain=retain,
                                   properties=properties)
        if wait:
            info.wait_for_publish(10)
        return key

    def reply(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.replies.get(key)
            return found[0].payload if found else None

    def wait(self, keys: list[str], timeout: float = 30.0) -> bool:
        """Until every one of ``keys`` has a reply (True), or the timeout (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(k in self.replies for k in keys):
                    return True
            time.sleep(0.02)
        return False

    def request(self, verb: str, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        key = self.send(verb, payload)
        if not self.wait([key], timeout):
            raise TimeoutError(f"no reply to {verb} within {timeout:.0f} s")
        reply = self.reply(key)
        assert reply is not None
        return reply

    def wait_online(self, timeout: float = 60.0) -> None:
        """Until the device's retained status says online."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.seen.get(self.topics.status) == b"online":
                    return
            time.sleep(0.05)
        raise TimeoutError(f"the device was not online within {timeout:.0f} s")

    def forget_status(self) -> None:
        with self._lock:
            self.seen.pop(self.topics.status, None)

    def latency(self, key: str) -> float | None:
        with self._lock:
            found = self.replies.get(key)
            return found[0].arrived - self.sent[key] if found else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
