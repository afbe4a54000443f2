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


def bench_store(args: argparse.Namespace) -> int:
    from edgeknn import bench_store as bench

    rows = bench.run(args.sizes, args.dim, args.dir)
    print(json.dumps(rows) if args.json else bench.report(rows, args.dim))
    return 0
