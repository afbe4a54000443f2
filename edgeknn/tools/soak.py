"""`edgeknn bench soak`: the daemon for M minutes on replayed frames and a steady stream of commands.

Every ``command_every`` seconds one command, in a fixed cycle (add an
uploaded image, snapshot, add, remove the oldest, rename back and forth,
remove), so the store stays about the same size and any growth is the
daemon's own.  Every ``sample_every`` seconds a row: RSS, peak RSS, open
fds, threads, store file size, reply latency p50/p95 over the interval.
The summary compares the end with the first sample after warm-up.

A benchmark, not a test: it prints numbers and judges nothing.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeknn.tools.devbroker import LocalBroker
from edgeknn.tools.harness import Commander, DaemonProcess, image_payload, make_frames

MB = 1024 * 1024


def _store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store, Path(f"{store}-wal")) if p.exists())


def run(minutes: float, frames: Path, *, models_dir: Path, mirror: str = "", fps: float = 10.0,
        command_every: float = 5.0, sample_every: float | None = None,
        out: Callable[[str], None] = print) -> dict[str, Any]:
    seconds = minutes * 60
    sample_every = sample_every or max(5.0, seconds / 20)
    warmup = min(120.0, seconds / 5)
    with tempfile.TemporaryDirectory(prefix="edgeknn-soak-") as tmp, LocalBroker(Path(tmp)) as broker:
        work = Path(tmp)
        replay = make_frames(frames, work / "frames")
        images = [image_payload(p) for p in sorted(replay.iterdir())[:4]]
        daemon = DaemonProcess(work, broker, replay, mirror, models_dir=models_dir, fps=fps)
        commander = Commander(broker)
        daemon.start()
        try:
            commander.wait_online()
            return _loop(daemon, commander, images, seconds, command_every, sample_every, warmup, out)
        finally:
            daemon.stop()
            commander.close()


def _loop(daemon: DaemonProcess, commander: Commander, images: list[str], seconds: float,
          command_every: float, sample_every: float, warmup: float,
          out: Callable[[str], None]) -> dict[str, Any]:
    added: list[int] = []
    labels = itertools.cycle(["cat", "dog", "owl"])
    cycle = itertools.cycle(["add", "snapshot", "add", "remove", "rename", "remove"])
    renamed = False
    keys: list[str] = []
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    next_command = next_sample = started
    out(f"{'min':>6} {'rss MB':>7} {'peak MB':>8} {'fds':>4} {'threads':>7} {'store KB':>9} "
        f"{'reply p50 ms':>12} {'p95 ms':>7} {'replies':>7}")
    while (now := time.monotonic()) < started + seconds:
        if now >= next_command:
            next_command += command_every
            verb = next(cycle)
            payload: dict[str, Any]
            if verb == "add":
                payload = {"label": next(labels), "image": images[len(keys) % len(images)]}
            elif verb == "remove" and added:
                payload = {"example_id": added.pop(0)}
            elif verb == "rename":
                payload = {"from": "cat", "to": "kitty"} if not renamed else {"from": "kitty", "to": "cat"}
                renamed = not renamed
            else:
                verb, payload = "snapshot", {}
            keys.append(commander.send(verb, payload, wait=False))
        if now >= next_sample:
            next_sample += sample_every
            for key in keys:  # learn the ids of answered adds, to remove them later
                reply = commander.reply(key)
                if reply and reply.get("cmd") == "add" and reply.get("ok"):
                    added.extend(i for i in reply["example_ids"] if i not in added)
            latencies = [lat * 1000 for k in keys if (lat := commander.latency(k)) is not None]
            row = {"minute": (now - started) / 60, **daemon.status(),
                   "store_bytes": _store_bytes(daemon.store), "replies": len(latencies),
                   "p50_ms": statistics.median(latencies) if latencies else 0.0,
                   "p95_ms": _p95(latencies), "unanswered": len(keys) - len(latencies)}
            samples.append(row)
            out(f"{row['minute']:6.1f} {row['rss'] / MB:7.1f} {row['peak_rss'] / MB:8.1f} {row['fds']:4d} "
                f"{row['threads']:7d} {row['store_bytes'] / 1024:9.0f} {row['p50_ms']:12.1f} "
                f"{row['p95_ms']:7.1f} {row['replies']:7d}")
            keys = [k for k in keys if commander.reply(k) is None]  # unanswered carry over
        time.sleep(0.05)
    return _summary(samples, warmup / 60, out)


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _summary(samples: list[dict[str, Any]], warmup_minutes: float,
             out: Callable[[str], None]) -> dict[str, Any]:
    after = [s for s in samples if s["minute"] >= warmup_minutes] or samples[-1:]
    first, last = after[0], samples[-1]
    summary = {
        "samples": samples,
        "rss_after_warmup_mb": first["rss"] / MB,
        "rss_end_mb": last["rss"] / MB,
        "rss_growth_pct": 100 * (last["rss"] - first["rss"]) / first["rss"],
        "rss_max_after_warmup_mb": max(s["rss"] for s in after) / MB,
        "fds": sorted({s["fds"] for s in after}),
        "threads": sorted({s["threads"] for s in after}),
        "unanswered_at_end": last["unanswered"],
    }
    out(f"RSS after warm-up ({warmup_minutes:.1f} min) {summary['rss_after_warmup_mb']:.1f} MB, "
        f"at the end {summary['rss_end_mb']:.1f} MB ({summary['rss_growth_pct']:+.1f} %), "
        f"max {summary['rss_max_after_warmup_mb']:.1f} MB; fds {summary['fds']}, "
        f"threads {summary['threads']}")
    return summary
