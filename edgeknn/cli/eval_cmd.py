"""`edgeknn eval DATASET --shots N`: few-shot accuracy beside two baselines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeknn.cli.common import Progress, add_embedder_args, open_embedder
from edgeknn.cli.flags import Flag, add_flags, load_config
from edgeknn.dataset import load_dataset
from edgeknn.errors import EdgeKnnError, ImageError
from edgeknn.images import load_image

if TYPE_CHECKING:  # the tools load only when eval runs, never for `edgeknn run`
    from edgeknn.tools.evaluation import MethodResult

EPILOG = """examples:
  edgeknn eval datasets/flower_photos --shots 5
  edgeknn eval datasets/hymenoptera --shots 10 --seed 7 --seeds 10 --k 5 --json

Each of --seeds runs draws --shots images per class (seed S, S+1, ...) as the
taught examples and tests on all the others.  Printed beside edgeknn's own
classifier: a plain k=3 cosine KNN (the TF.js knn-classifier's method) and the
nearest class mean (the idea behind Coral's weight imprinting), on the same
split.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="few-shot accuracy on a folder-per-class dataset",
        description="Measure few-shot classification accuracy; the store is not touched.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, help="folder with one sub-folder per class")
    p.add_argument("--shots", type=int, default=5, help="taught examples per class (default 5)")
    p.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=5, help="how many seeds to repeat over (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    add_flags(p, [Flag("--k", "classifier.k")])
    add_embedder_args(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from edgeknn.tools.evaluation import evaluate

    if args.shots < 1 or args.seeds < 1:
        raise EdgeKnnError("--shots and --seeds must be at least 1")
    config = load_config(args)
    classes = load_dataset(args.dataset)
    labels = tuple(classes)
    embedder = open_embedder(config)
    jobs = [(code, path) for code, label in enumerate(labels) for path in classes[label]]
    progress = Progress("embed", len(jobs))
    vectors, codes = [], []
    for done, (code, path) in enumerate(jobs, 1):
        try:
            vectors.append(embedder.embed(load_image(path)))
        except ImageError as exc:
            print(f"edgeknn: warning: skipped {exc}", file=sys.stderr)
            continue
        codes.append(code)
        progress.update(done)
    seeds = list(range(args.seed, args.seed + args.seeds))
    results = evaluate(
        np.stack(vectors), np.array(codes), labels, shots=args.shots, seeds=seeds,
        k=config.classifier.k,
    )
    if args.json:
        print(json.dumps(as_json(args, config.classifier.k, labels, seeds, results)))
    else:
        print_report(args, labels, seeds, len(codes), results)
    return 0


def as_json(args: argparse.Namespace, k: int, labels: tuple[str, ...], seeds: list[int],
            results: list[MethodResult]) -> dict:
    return {
        "dataset": str(args.dataset),
        "shots": args.shots,
        "k": k,
        "seeds": seeds,
        "classes": list(labels),
        "methods": {
            r.name: {
                "accuracy": round(r.mean, 4),
                "spread": round(r.spread, 4),
                "per_seed": [round(a, 4) for a in r.accuracies],
                "per_class": dict(zip(labels, (round(a, 4) for a in r.per_class), strict=True)),
                "confusion": r.confusion.tolist(),
            }
            for r in results
        },
    }


def print_report(args: argparse.Namespace, labels: tuple[str, ...], seeds: list[int],
                 n_images: int, results: list[MethodResult]) -> None:
    print(f"{args.dataset}: {len(labels)} classes, {n_images} images, {args.shots} shots, "
          f"seeds {seeds[0]}..{seeds[-1]}")
    print()
    print(f"{'method':<12} {'accuracy':>9} {'± spread':>9}")
    for r in results:
        print(f"{r.name:<12} {r.mean * 100:8.1f}% {r.spread * 100:8.1f}")
    ours = results[0]
    print()
    width = max(6, *(len(label) for label in labels))
    print(f"per class ({ours.name}):")
    for label, acc in zip(labels, ours.per_class, strict=True):
        print(f"  {label:<{width}} {acc * 100:6.1f}%")
    print()
    print(f"confusion ({ours.name}, all seeds; rows true, columns predicted):")
    short = [label[:6] for label in labels]
    print(" " * (width + 2) + " ".join(f"{s:>6}" for s in short))
    for label, row in zip(labels, ours.confusion, strict=True):
        print(f"  {label:<{width}}" + " ".join(f"{n:>6}" for n in row))
