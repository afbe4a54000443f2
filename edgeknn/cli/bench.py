"""`edgeknn bench store|pipeline`: benchmarks that print numbers (not tests)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """examples:
  edgeknn bench store                         # 1k, 10k and 100k examples of 1024-d
  edgeknn bench store --sizes 1000 10000 --json
  edgeknn bench pipeline --frames 300
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks: store latency and memory, pipeline throughput",
        description="Measure and print; nothing here passes or fails.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    s = kinds.add_parser("store", help="predict latency, memory, add throughput")
    s.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    s.add_argument("--dim", type=int, default=1024)
    s.add_argument("--dir", type=Path, default=None, help="where the temporary stores go")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=bench_store)

    p = kinds.add_parser("pipeline", help="raw invoke rate vs end-to-end rate, capture-to-MQTT latency")
    p.add_argument("--frames", type=Path, default=None,
                   help="image folder to replay (default: ../shared/data/images/imprinting beside the repo)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=0, help="embedder CPU threads (default: all cores)")
    p.add_argument("--detector", action="store_true", help="run the detector beside the embedder")
    p.add_argument("--detector-accelerator", choices=["auto", "cpu", "edgetpu"], default="auto",
                   help="put the detector on the CPU to keep the Edge TPU for the embedder")
    p.add_argument("--original-size", action="store_true",
                   help="replay frames at their own size (the resize is then part of the pipeline); "
                   "default: at the model's input size, as the Pi camera's ISP delivers them")
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=bench_pipeline)


def bench_store(args: argparse.Namespace) -> int:
    from edgeknn import bench_store as bench

    rows = bench.run(args.sizes, args.dim, args.dir)
    print(json.dumps(rows) if args.json else bench.report(rows, args.dim))
    return 0


def bench_pipeline(args: argparse.Namespace) -> int:
    from edgeknn import bench_pipeline as bench
    from edgeknn.errors import EdgeKnnError
    from edgeknn.paths import default_models_dir

    frames = args.frames or Path(__file__).resolve().parents[2].parent / "shared/data/images/imprinting"
    if not frames.exists():
        raise EdgeKnnError(f"replay folder {frames} does not exist; give one with --frames")
    result = bench.run(frames, seconds=args.seconds, threads=args.threads, detector=args.detector,
                       detector_accelerator=args.detector_accelerator,
                       models_dir=args.models_dir or default_models_dir(),
                       model_size_frames=not args.original_size)
    print(json.dumps(result) if args.json else bench.report(result))
    return 0
