"""Fault injection against `edgeknn run` in its own process, over a real mosquitto.

kill -9 during mixed commands, the broker killed mid-burst, a full disk: what
was acknowledged survives, every command gets at most one reply, and the
daemon names the problem without a traceback.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from contextlib import closing

import pytest
from conftest import IMAGES, MODELS

from edgeknn.tools.faults import Ledger, kill_rounds
from edgeknn.tools.harness import Commander, DaemonProcess, image_payload, make_frames


@pytest.fixture
def frames(tmp_path):
    return make_frames(IMAGES, tmp_path / "frames")


@pytest.fixture
def images(frames):
    return [image_payload(p) for p in sorted(frames.iterdir())[:4]]


@pytest.fixture
def commander(mosquitto):
    c = Commander(mosquitto)
    yield c
    c.close()


@pytest.fixture
def daemon(tmp_path, mosquitto, frames):
    process = DaemonProcess(tmp_path, mosquitto, frames, MODELS)
    yield process
    process.kill()


def no_tracebacks(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_20_kill_9_rounds_lose_no_acknowledged_example(daemon, commander, images):
    ledger, rounds = kill_rounds(daemon, commander, images, rounds=20, seed=20261129)
    problems = [p for r in rounds for p in r.problems]
    assert problems == []
    assert ledger.acknowledged >= 10  # the rounds did real work before their kills
    assert sum(r.commands - r.acknowledged for r in rounds) > 0  # and kills cut some short
    no_tracebacks(daemon.log())


@pytest.mark.slow
def test_a_broker_killed_mid_burst_costs_no_acknowledged_example_and_no_double_reply(
        mosquitto, daemon, commander, images):
    daemon.start()
    commander.wait_online()
    keys = [commander.send("add", {"label": "cat", "image": images[i % 4]}, wait=False)
            for i in range(60)]
    commander.wait(keys[:5])
    mosquitto.kill()
    mosquitto.start()
    after = Commander(mosquitto)
    try:
        after.wait_online()  # the daemon reconnected and announced itself
        reply = after.request("add", {"label": "dog", "image": images[0]})
        assert reply["ok"] is True
    finally:
        after.close()
    daemon.stop()
    acknowledged = [i for k in keys if (r := commander.reply(k)) for i in r.get("example_ids", [])]
    assert all(len(commander.replies[k]) == 1 for k in commander.replies)  # never two
    ledger = Ledger(examples=dict.fromkeys(acknowledged, "cat"))
    assert ledger.check(daemon.store) == []
    no_tracebacks(daemon.log())


@pytest.fixture
def small_disk(tmp_path):
    mount, umount = shutil.which("mount"), shutil.which("umount")
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run([mount or "mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip() or 'not permitted'}); "
                    "the full-disk test needs root")
    yield disk
    subprocess.run([umount or "umount", "--lazy", str(disk)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_answered_store_full_and_removing_still_works(
        tmp_path, mosquitto, frames, commander, images, small_disk):
    daemon = DaemonProcess(tmp_path, mosquitto, frames, MODELS, store=small_disk / "store.db")
    daemon.start()
    try:
        commander.wait_online()
        taught = []
        for i in range(2000):
            reply = commander.request("add", {"label": f"c{i % 3}", "image": images[i % 4]})
            if not reply["ok"]:
                break
            taught += reply["example_ids"]
        assert reply["error"].startswith("store full: no room left beside")
        removed = commander.request("remove", {"example_id": taught[0]})
        assert removed["ok"] is True
        cleared = commander.request("remove", {"label": "c1"})
        assert cleared["ok"] is True and cleared["removed"] > 0
        again = commander.request("add", {"label": "again", "image": images[0]})
        assert again["ok"] is True
    finally:
        daemon.stop()
    no_tracebacks(daemon.log())


@pytest.mark.slow
def test_a_short_soak_answers_every_command_with_fds_and_threads_flat(tmp_path):
    from edgeknn.tools import soak

    lines: list[str] = []
    result = soak.run(0.3, IMAGES, models_dir=tmp_path / "models", mirror=str(MODELS),
                      command_every=0.5, sample_every=3, out=lines.append)
    assert len(result["fds"]) == 1 and len(result["threads"]) == 1, result
    assert result["unanswered_at_end"] <= 1  # at most the command sent just before the end
    assert lines[-1].startswith("RSS after warm-up")


@pytest.mark.slow
def test_a_burst_of_2000_adds_at_full_speed_gets_one_reply_each_and_commits_only_answered_ones(
        daemon, commander, images):
    daemon.start()
    commander.wait_online()
    keys = [commander.send("add", {"label": "cat", "image": images[i % 4]}, wait=False)
            for i in range(2000)]
    assert commander.wait(keys, timeout=120), f"{sum(k in commander.replies for k in keys)} of 2000 answered"
    time.sleep(0.5)  # a second reply would arrive now
    assert all(len(commander.replies[k]) == 1 for k in keys)
    replies = [commander.replies[k][0].payload for k in keys]
    answered = {i for r in replies if r["ok"] for i in r["example_ids"]}
    assert {r["error"].split(":")[0] for r in replies if not r["ok"]} <= {"busy"}
    daemon.stop()
    with closing(sqlite3.connect(daemon.store)) as conn:
        stored = {i for (i,) in conn.execute("SELECT id FROM examples")}
    assert stored == answered  # nothing committed without its reply
    print(f"2000 adds at full speed: {len(answered)} carried out, {2000 - len(answered)} busy")
