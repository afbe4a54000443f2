"""`edgeknn bench store|pipeline`: benchmarks that print numbers (not tests)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeknn.cli.flags import MODELS_DIR, add_flags, load_config
from edgeknn.vision.runtime import ACCELERATORS

EPILOG = """examples:
  edgeknn bench store                         # 1k, 10k and 100k examples of 1024-d
  edgeknn bench store --sizes 1000 10000 --json
  edgeknn bench pipeline --seconds 30
  edgeknn bench pipeline --frames ~/photos/kitchen --detector
  edgeknn bench soak --minutes 20
  edgeknn bench faults --rounds 100

See `edgeknn bench KIND --help` for each benchmark's options.
"""

STORE_EPILOG = """examples:
  edgeknn bench store                         # 1k, 10k and 100k examples of 1024-d
  edgeknn bench store --sizes 1000 10000 --json
  edgeknn bench store --dim 1280 --dir /var/lib/edgeknn   # the disk the daemon uses

Embeddings are random unit vectors; each example carries a thumbnail-sized
blob, so the disk work is realistic.
"""

PIPELINE_EPILOG = """examples:
  edgeknn bench pipeline
  edgeknn bench pipeline --seconds 30 --json
  edgeknn bench pipeline --frames ~/photos/kitchen
  edgeknn bench pipeline --detector --detector-accelerator cpu
  edgeknn bench pipeline --detector --detector-every 3

Runs the real daemon on replayed frames with a private MQTT broker, and
reports the interpreter's raw invoke rate beside the end-to-end rate and the
capture-to-MQTT latency; then again with one client watching the web page's
live view (MJPEG).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks: store latency and memory, pipeline throughput",
        description="Measure and print; nothing here passes or fails.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    s = kinds.add_parser(
        "store", help="predict latency, memory, add throughput",
        description="Fill temporary stores of each size and measure predict latency, memory\n"
        "and add throughput.",
        epilog=STORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000], metavar="N",
                   help="store sizes to measure, in examples (default: 100 1000 10000 100000)")
    s.add_argument("--dim", type=int, default=1024,
                   help="embedding dimension (default: 1024, MobileNet v1's)")
    s.add_argument("--dir", type=Path, default=None,
                   help="where the temporary stores go (default: the system's temp dir)")
    s.add_argument("--json", action="store_true", help="print the results as one JSON list")
    s.set_defaults(func=bench_store)

    p = kinds.add_parser(
        "pipeline", help="raw invoke rate vs end-to-end rate, capture-to-MQTT latency",
        description="Run the daemon on replayed frames and measure its throughput and latency.",
        epilog=PIPELINE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--frames", type=Path, default=None, metavar="DIR",
                   help="image folder to replay (default: ../shared/data/images/imprinting beside the repo)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="how long to measure the end-to-end rate (default: 10)")
    p.add_argument("--threads", type=int, default=0, help="embedder CPU threads (default: all cores)")
    p.add_argument("--detector", action="store_true", help="run the detector beside the embedder")
    p.add_argument("--detector-every", type=int, default=1, metavar="N",
                   help="run the detector on every N-th frame, as detector.every_n_frames (default: 1)")
    p.add_argument("--detector-accelerator", choices=ACCELERATORS, default="auto",
                   help="where the detector runs; cpu keeps the Edge TPU for the embedder (default: auto)")
    add_flags(p, MODELS_DIR)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=bench_pipeline)
    register_reliability(kinds)


SOAK_EPILOG = """examples:
  edgeknn bench soak --minutes 20
  edgeknn bench soak --minutes 60 --fps 10 --command-every 5 --json

Runs `edgeknn run` in its own process on replayed frames with a private MQTT
broker, sends a command every few seconds (add, snapshot, remove, rename), and
prints RSS, fds, threads, store size and reply latency over time.
"""

FAULTS_EPILOG = """examples:
  edgeknn bench faults --rounds 100
  edgeknn bench faults --rounds 500 --seed 7

Each round starts `edgeknn run`, sends mixed commands (adds, removes, renames),
kills it with SIGKILL at a random moment and checks the store against every
reply received: no acknowledged example lost, renames all or nothing,
PRAGMA integrity_check ok.
"""


def _daemon_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=Path, default=None, metavar="DIR",
                   help="images to replay and upload (default: ../shared/data/images beside the repo)")
    add_flags(p, MODELS_DIR)
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


def register_reliability(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "soak", help="RSS, fds, threads, store size and reply latency over M minutes",
        description="Run the daemon for M minutes on replayed frames and commands.",
        epilog=SOAK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default: 10)")
    p.add_argument("--fps", type=float, default=10.0, help="replayed frames per second (default: 10)")
    p.add_argument("--command-every", type=float, default=5.0, metavar="S",
                   help="seconds between commands (default: 5)")
    _daemon_options(p)
    p.set_defaults(func=bench_soak)

    p = kinds.add_parser(
        "faults", help="kill -9 rounds during mixed commands, checked against the replies",
        description="Kill the daemon with SIGKILL during commands, round after round, and check "
        "that nothing acknowledged is lost.",
        epilog=FAULTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=50, help="kill -9 rounds (default: 50)")
    p.add_argument("--seed", type=int, default=1, help="random seed of commands and kill times")
    _daemon_options(p)
    p.set_defaults(func=bench_faults)


def _replay_source(args: argparse.Namespace) -> tuple[Path, Path, str]:
    from edgeknn.errors import EdgeKnnError

    frames = args.frames or Path(__file__).resolve().parents[2].parent / "shared/data/images"
    if not frames.is_dir():
        raise EdgeKnnError(f"image folder {frames} does not exist; give one with --frames")
    models = load_config(args).models
    return frames, models.dir, models.mirror


def bench_soak(args: argparse.Namespace) -> int:
    from edgeknn.tools import soak

    frames, models_dir, mirror = _replay_source(args)
    quiet = args.json
    result = soak.run(args.minutes, frames, models_dir=models_dir, mirror=mirror, fps=args.fps,
                      command_every=args.command_every, out=(lambda line: None) if quiet else print)
    if quiet:
        print(json.dumps(result))
    return 0


def bench_faults(args: argparse.Namespace) -> int:
    import tempfile

    from edgeknn.tools.devbroker import LocalBroker
    from edgeknn.tools.faults import kill_rounds
    from edgeknn.tools.harness import Commander, DaemonProcess, image_payload, make_frames

    frames, models_dir, mirror = _replay_source(args)
    with tempfile.TemporaryDirectory(prefix="edgeknn-faults-") as tmp, LocalBroker(Path(tmp)) as broker:
        work = Path(tmp)
        replay = make_frames(frames, work / "frames")
        images = [image_payload(p) for p in sorted(replay.iterdir())[:4]]
        daemon = DaemonProcess(work, broker, replay, mirror, models_dir=models_dir)
        commander = Commander(broker)

        def report(number: int, result: object) -> None:
            if not args.json:
                print(f"round {number + 1}: {result}")
        try:
            ledger, rounds = kill_rounds(daemon, commander, images, rounds=args.rounds, seed=args.seed,
                                         report=report)
        finally:
            daemon.kill()
            commander.close()
    problems = [p for r in rounds for p in r.problems]
    summary = {"rounds": len(rounds), "commands": sum(r.commands for r in rounds),
               "answered_before_the_kill": sum(r.acknowledged for r in rounds),
               "acknowledged_examples": len(ledger.examples), "problems": problems}
    print(json.dumps(summary) if args.json else
          f"{summary['rounds']} kill -9 rounds, {summary['commands']} commands, "
          f"{summary['answered_before_the_kill']} answered before the kill; "
          f"problems: {problems or 'none'}")
    return 1 if problems else 0


def bench_store(args: argparse.Namespace) -> int:
    from edgeknn.tools import bench_store as bench

    rows = bench.run(args.sizes, args.dim, args.dir)
    print(json.dumps(rows) if args.json else bench.report(rows, args.dim))
    return 0


def bench_pipeline(args: argparse.Namespace) -> int:
    from edgeknn.errors import EdgeKnnError
    from edgeknn.tools import bench_pipeline as bench

    frames = args.frames or Path(__file__).resolve().parents[2].parent / "shared/data/images/imprinting"
    if not frames.exists():
        raise EdgeKnnError(f"replay folder {frames} does not exist; give one with --frames")
    models = load_config(args).models
    result = bench.run(frames, seconds=args.seconds, threads=args.threads, detector=args.detector,
                       detector_accelerator=args.detector_accelerator, detector_every=args.detector_every,
                       models_dir=models.dir, mirror=models.mirror or None)
    print(json.dumps(result) if args.json else bench.report(result))
    return 0
