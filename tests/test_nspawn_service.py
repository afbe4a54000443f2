"""The service under a real systemd: Debian 12 booted with ``systemd-nspawn -b``, deployed by the playbook.

What a person installing edgeknn on a device would see, checked from the
outside: ``systemctl``, the journal and MQTT.  The container is a plain Debian
12 with no GPIO chip and no ``gpio`` group, deployed with a button configured,
so the GPIO panel fails for a real reason and the service must carry on
without it.  The camera replays three photos from /srv/edgeknn-frames; the
tests make it hang the way a driver does, by putting a FIFO where a photo was
(the read blocks in ``open()`` in the kernel).

Slow (a debootstrapped root file system, cached, and a real Ansible run): see
tests/nspawn.py for how the machine is booted and cached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nspawn
import pytest
from conftest import IMAGES, MODELS, Listener, wait_until
from test_deploy import ANSIBLE_PLAYBOOK, DEPLOY, require_ansible, snapshot_checkout

from edgeknn.tools.devbroker import LocalBroker, free_port

pytestmark = pytest.mark.slow

HOST = "nspawn-pi"
DEVICE_ID = "nspawn"
BASE = f"edgeknn/{DEVICE_ID}"
FRAMES = "/srv/edgeknn-frames"
WHEELS = "/srv/edgeknn-wheels"
# What the role installs into the venv on this target: the gpio extra (lgpio
# from PyPI, plain Debian with a button) and its numpy pin (defaults/main.yml).
REQUIREMENTS = (".[gpio]", "numpy>=1.24,<2")
PHOTOS = ("bird.bmp", "cat.bmp", "dragonfly.bmp")
RECAP = re.compile(rf"^{HOST}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
WATCHDOG_SEC = 30  # systemd/edgeknn.service


@dataclass(frozen=True)
class Played:
    returncode: int
    output: str

    @property
    def changed(self) -> int:
        found = RECAP.search(self.output)
        assert found, f"no PLAY RECAP for {HOST}:\n{self.output[-4000:]}"
        return int(found.group(2))


@dataclass
class Device:
    machine: nspawn.Machine
    broker: LocalBroker
    workdir: Path
    check_run: Played
    first_run: Played

    def play(self, *options: str) -> Played:
        return play(self.workdir, *options)

    def run(self, command: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.machine.run(command, **kwargs)

    def show(self, *properties: str) -> dict[str, str]:
        out = self.run(f"systemctl show edgeknn -p {','.join(properties)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, since: str = "") -> str:
        return self.run(f"journalctl -u edgeknn --no-pager -o cat {since}").stdout

    def listen(self, topic: str = f"{BASE}/#") -> Listener:
        return Listener(self.broker.host, self.broker.port, topic)

    def wait_active(self, timeout: float = 120) -> dict[str, str]:
        wait_until(lambda: self.show("ActiveState")["ActiveState"] == "active", timeout, "edgeknn active")
        return self.show("MainPID", "NRestarts", "StatusText")


def play(workdir: Path, *options: str) -> Played:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKNN_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="False")
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(workdir / "inventory.ini"), "-e", f"@{workdir / 'vars.json'}",
         *options, "playbook.yml"],
        cwd=DEPLOY, env=env, capture_output=True, text=True, timeout=1200,
    )
    return Played(done.returncode, done.stdout + done.stderr)


def variables(source: Path, broker: LocalBroker) -> dict[str, object]:
    return {
        "edgeknn_manage_service": True,
        "edgeknn_source_dir": str(source),
        "edgeknn_model_mirror": "/srv/edgeknn-models",
        "edgeknn_device_id": DEVICE_ID,
        "edgeknn_mqtt_host": broker.host,
        "edgeknn_mqtt_port": broker.port,
        "edgeknn_camera_source": "replay",
        "edgeknn_camera_path": FRAMES,
        # A button, on a machine with no GPIO chip and no gpio group.
        "edgeknn_gpio_buttons": [{"pin": 17, "label": "cat"}],
        "edgeknn_config_extra": {"camera": {"fps": 5.0, "retry_max": 5.0},
                                 "pipeline": {"prediction_interval": 0.0, "stats_interval": 5.0},
                                 # The machine shares this one's network: a free loopback port.
                                 "web": {"host": "127.0.0.1", "port": free_port()}},
        # The lists debootstrap left are enough; no apt-get update per run.
        "edgeknn_apt_cache_valid_time": 10 * 365 * 86400,
        # Python packages from the wheelhouse made on this machine (tests/nspawn.py).
        "edgeknn_pip_extra_args": f"--no-index --find-links {WHEELS}",
    }


@pytest.fixture(scope="module")
def device() -> Iterator[Device]:
    require_ansible()
    reason = nspawn.why_not_here()
    if reason:
        pytest.skip(f"cannot boot a container here: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="edgeknn-nspawn-"))
    workdir.chmod(0o755)
    broker = LocalBroker(workdir)
    source = workdir / "source"
    source.mkdir()
    snapshot_checkout(source)
    wheels = nspawn.ensure_wheelhouse(source, REQUIREMENTS)
    machine = nspawn.Machine(workdir, binds=[(nspawn.apt_archives(), "/var/cache/apt/archives")],
                             binds_ro=[(MODELS, "/srv/edgeknn-models"), (wheels, WHEELS)])
    try:
        broker.start()
        machine.prepare()
        frames = machine.root / FRAMES.lstrip("/")
        frames.mkdir(parents=True)
        for name in PHOTOS:
            shutil.copy(IMAGES / name, frames / name)
        machine.boot()
        (workdir / "inventory.ini").write_text(f"[edgeknn]\n{machine.inventory_line(HOST)}\n")
        (workdir / "vars.json").write_text(json.dumps(variables(source, broker)))
        checked = play(workdir, "--check", "--diff")
        first = play(workdir)
        assert first.returncode == 0, first.output[-8000:]
        yield Device(machine, broker, workdir, checked, first)
    finally:
        try:
            machine.shutdown()
        finally:
            broker.close()
            shutil.rmtree(workdir, ignore_errors=True)


def test_check_mode_on_a_fresh_device_only_reports(device):
    assert device.check_run.returncode == 0, device.check_run.output[-8000:]
    assert device.check_run.changed > 0


def test_the_unit_is_active_only_after_ready(device):
    device.wait_active()
    # The states the unit goes through, sampled every 0.1 s inside the machine.
    seen = device.run("systemctl restart --no-block edgeknn; for i in $(seq 1200); do "
                      "s=$(systemctl show -p ActiveState --value edgeknn); echo $s; "
                      "[ $s = active ] && break; sleep 0.1; done", timeout=180).stdout.split()
    assert seen[-1] == "active", seen
    assert "activating" in seen, seen  # loading the model, opening the store: not yet READY=1
    shown = device.show("MainPID", "StatusText")
    assert re.match(r"running on cpu, \d+ examples", shown["StatusText"]) or "fps on cpu" in shown["StatusText"]
    times = device.show("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    entries = [json.loads(line) for line in device.run(
        "journalctl -u edgeknn -o json --no-pager _PID=" + device.show("MainPID")["MainPID"]).stdout.splitlines()]
    opened = [int(e["__MONOTONIC_TIMESTAMP"]) for e in entries if "embedder" in e.get("MESSAGE", "")]
    assert opened, "the daemon did not log opening its embedder"
    assert int(times["ExecMainStartTimestampMonotonic"]) < opened[-1] < int(times["ActiveEnterTimestampMonotonic"])


def test_without_a_gpio_chip_the_service_says_why_and_keeps_predicting_and_teaching(device):
    device.wait_active()
    listener = device.listen()
    try:
        state = listener.wait_for(f"{BASE}/state")[-1].json()
        assert state["gpio"].startswith("failed: "), state
        assert "lgd-nfy" not in state["gpio"] and "install lgpio" not in state["gpio"], state
        assert state["camera"] == "ok" and state["inference"] == "ok", state
        listener.wait_for(f"{BASE}/prediction", count=3)
        listener.send(f"{BASE}/cmd/add", json.dumps({"id": "t1", "label": "bird", "count": 2}).encode())
        reply = listener.wait_for(f"{BASE}/cmd/result")[-1].json()
        assert reply["ok"] is True, reply
    finally:
        listener.close()
    log = device.journal()
    assert "gpio: failed: " in log and "lgd-nfy" not in log
    assert device.show("NRestarts")["NRestarts"] == "0"


def test_status_changes_after_a_teach(device):
    device.wait_active()
    before = device.show("StatusText")["StatusText"]
    listener = device.listen()
    try:
        listener.send(f"{BASE}/cmd/add", json.dumps({"id": "t2", "label": "cat", "count": 3}).encode())
        listener.wait_for(f"{BASE}/cmd/result")
    finally:
        listener.close()
    wait_until(lambda: device.show("StatusText")["StatusText"] != before, 15, "STATUS= to change")
    assert re.search(r"\d+ examples", device.show("StatusText")["StatusText"])


def test_debian_packages_built_against_numpy_1_import_in_the_service_venv(device):
    # Raspberry Pi OS's picamera2 imports simplejpeg, a Cython module built against
    # Debian's numpy 1.24; python3-pywt is one such module that plain Debian has.
    # Under numpy 2 both fail with "numpy.dtype size changed" (picamera2 #1088, #1211).
    device.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pywt",
               timeout=600)
    numpy = device.run("/opt/edgeknn/venv/bin/python -c 'import numpy; print(numpy.__version__)'").stdout
    assert numpy.startswith("1."), numpy
    device.run("runuser -u edgeknn -- /opt/edgeknn/venv/bin/python -c 'import pywt, edgeknn.vision.runtime'")


def test_a_second_run_changes_nothing(device):
    again = device.play()
    assert again.returncode == 0, again.output[-8000:]
    assert again.changed == 0, again.output


def test_a_stopped_process_is_restarted_by_the_watchdog(device):
    shown = device.wait_active()
    device.run(f"kill -STOP {shown['MainPID']}")
    wait_until(lambda: device.show("MainPID")["MainPID"] not in ("0", shown["MainPID"]),
               WATCHDOG_SEC + 30, "a new main process")
    assert "Watchdog timeout" in device.journal() or "watchdog" in device.journal().lower()
    device.wait_active()


def test_a_camera_that_stops_delivering_is_reported_and_the_service_restarted(device):
    shown = device.wait_active()
    listener = device.listen(f"{BASE}/state")
    try:
        # Where a photo was, a FIFO: the next read of it blocks in open(), as a hung driver would.
        device.run(f"mkfifo {FRAMES}/.hang && mv -f {FRAMES}/.hang {FRAMES}/{PHOTOS[1]}")
        hung_at = time.monotonic()
        wait_until(lambda: any(m.json()["camera"].startswith("failed: no frame") for m in listener.on(f"{BASE}/state")),
                   10, "state to report the stalled camera")
        assert time.monotonic() - hung_at < 10
        wait_until(lambda: device.show("MainPID")["MainPID"] not in ("0", shown["MainPID"]),
                   WATCHDOG_SEC + 30, "the watchdog to restart the service")
        assert "watchdog" in device.journal().lower()
        # Back up, the FIFO is refused as "not an image file" and retried: no restart loop.
        device.wait_active()
        restarts = device.show("NRestarts")["NRestarts"]
        device.run(f"cp /srv/edgeknn-models/../edgeknn-frames/{PHOTOS[0]} {FRAMES}/.back && "
                   f"mv -f {FRAMES}/.back {FRAMES}/{PHOTOS[1]}")
        wait_until(lambda: listener.on(f"{BASE}/state") and listener.on(f"{BASE}/state")[-1].json()["camera"] == "ok",
                   60, "frames to flow again")
        assert device.show("NRestarts")["NRestarts"] == restarts
    finally:
        listener.close()


def test_stop_publishes_offline_within_5_s(device):
    device.wait_active()
    listener = device.listen(f"{BASE}/status")
    try:
        listener.wait_for(f"{BASE}/status", b"online")
        device.run("systemctl stop --no-block edgeknn")
        wait_until(lambda: listener.on(f"{BASE}/status")[-1].payload == b"offline", 5, "offline")
    finally:
        listener.close()
    wait_until(lambda: device.show("ActiveState")["ActiveState"] == "inactive", 15, "edgeknn inactive")
