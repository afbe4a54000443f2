"""`edgeknn eval DATASET --shots 3 5 7`: few-shot accuracy of every method, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeknn.cli.common import Progress, add_embedder_args, open_embedder
from edgeknn.cli.flags import Flag, add_flags, load_config
from edgeknn.dataset import load_dataset
from edgeknn.errors import EdgeKnnError, ImageError
from edgeknn.images import corner_views, load_image
from edgeknn.vision.embedder import Embedder

if TYPE_CHECKING:  # the tools load only when eval runs, never for `edgeknn run`
    from edgeknn.tools.evaluation import MethodResult

EPILOG = """examples:
  edgeknn eval datasets/flower_photos --shots 3 5 7 --seeds 10
  edgeknn eval datasets/hymenoptera --shots 10 --seed 7 --seeds 10 --k 5 --json
  edgeknn eval datasets/flower_photos --embedder mobilenet_v1_embedder mobilenet_v2

Each of --seeds runs draws --shots images per class (seed S, S+1, ...) as the
taught examples and tests on all the others.  Every method sees the same split:
a plain k=3 cosine KNN (the TF.js knn-classifier's method), the nearest class
mean (the idea behind Coral's weight imprinting), "balanced", and the default
"logreg" without views, with the mirror view (the Edge TPU default) and with
the crop views (the CPU default: taught images also stored mirrored and as 4
corner crops, frames classified alone; classifier.views).  Accuracy does not
depend on the backend.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="few-shot accuracy on a folder-per-class dataset",
        description="Measure few-shot classification accuracy; the store is not touched.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", type=Path, help="folder with one sub-folder per class")
    p.add_argument("--shots", type=int, nargs="+", default=[5],
                   help="taught examples per class; several run side by side (default 5)")
    p.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    p.add_argument("--seeds", type=int, default=5, help="how many seeds to repeat over (default 5)")
    p.add_argument("--no-mirror", action="store_true",
                   help="skip the mirrored embeddings (halves the time; no logreg+mirror or +crops row)")
    p.add_argument("--no-crops", action="store_true",
                   help="skip the 4 corner views of each image (saves 2/3 of the time; no logreg+crops row)")
    p.add_argument("--embedder", nargs="+", default=None, metavar="MODEL",
                   help="compare these embedders (manifest names or .tflite paths); default --model")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    add_flags(p, [Flag("--k", "classifier.k")])
    add_embedder_args(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from edgeknn.tools.evaluation import evaluate

    if min(args.shots) < 1 or args.seeds < 1:
        raise EdgeKnnError("--shots and --seeds must be at least 1")
    config = load_config(args)
    k = config.classifier.k
    classes = load_dataset(args.dataset)
    labels = tuple(classes)
    seeds = list(range(args.seed, args.seed + args.seeds))
    report: dict = {"dataset": str(args.dataset), "k": k, "seeds": seeds,
                    "classes": list(labels), "embedders": {}}
    for model in args.embedder or [config.embedder.model]:
        embedder = open_embedder(replace(config, embedder=replace(config.embedder, model=model)))
        vectors, mirrored, corners, codes = embed_dataset(embedder, classes, mirror=not args.no_mirror,
                                                          crops=not (args.no_mirror or args.no_crops))
        by_shots = {
            shots: evaluate(vectors, codes, labels, shots=shots, seeds=seeds, k=k,
                            features=embedder.info.features, mirrored=mirrored, corners=corners)
            for shots in args.shots
        }
        name = model
        report["embedders"][name] = as_json(embedder, len(codes), labels, by_shots)
        if not args.json:
            print_report(args, name, embedder, labels, seeds, len(codes), by_shots)
    if args.json:
        print(json.dumps(report))
    return 0


def embed_dataset(embedder: Embedder, classes: dict[str, list[Path]], *, mirror: bool, crops: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Each image's embedding, its mirror's (``mirror``) and its 4 corner views' (``crops``)."""
    jobs = [(code, path) for code, label in enumerate(classes) for path in classes[label]]
    progress = Progress("embed", len(jobs))
    vectors, flipped, corners, codes = [], [], [], []
    w, h = embedder.info.input_size
    for done, (code, path) in enumerate(jobs, 1):
        try:
            image = load_image(path)
        except ImageError as exc:
            print(f"edgeknn: warning: skipped {exc}", file=sys.stderr)
            continue
        vectors.append(embedder.embed(image))
        if mirror:
            flipped.append(embedder.embed(np.ascontiguousarray(image[:, ::-1])))
        if crops:
            corners.append([embedder.embed(v) for v in corner_views(image, w, h, embedder.resize)])
        codes.append(code)
        progress.update(done)
    return (np.stack(vectors), np.stack(flipped) if mirror else None,
            np.array(corners) if crops else None, np.array(codes))


def as_json(embedder: Embedder, n_images: int, labels: tuple[str, ...],
            by_shots: dict[int, list[MethodResult]]) -> dict:
    return {
        "fingerprint": embedder.info.fingerprint,
        "features": embedder.info.features.id,
        "images": n_images,
        "shots": {
            str(shots): {
                r.name: {
                    "accuracy": round(r.mean, 4),
                    "spread": round(r.spread, 4),
                    "per_seed": [round(a, 4) for a in r.accuracies],
                    "per_class": dict(zip(labels, (round(a, 4) for a in r.per_class), strict=True)),
                    "confusion": r.confusion.tolist(),
                    **({"refit_ms": round(r.refit_ms, 1)} if r.refit_ms else {}),
                }
                for r in results
            }
            for shots, results in by_shots.items()
        },
    }


def print_report(args: argparse.Namespace, name: str, embedder: Embedder, labels: tuple[str, ...],
                 seeds: list[int], n_images: int, by_shots: dict[int, list[MethodResult]]) -> None:
    print(f"{args.dataset}: {len(labels)} classes, {n_images} images, seeds {seeds[0]}..{seeds[-1]}; "
          f"embedder {name} ({embedder.info.dim}-d, features {embedder.info.features.id})")
    print()
    shots = list(by_shots)
    print(f"{'method':<14}" + "".join(f"{f'{s} shots':>17}" for s in shots))
    names = [r.name for r in by_shots[shots[0]]]
    table = {s: {r.name: r for r in results} for s, results in by_shots.items()}
    for method in names:
        cells = "".join(f"{table[s][method].mean * 100:9.1f}% ± {table[s][method].spread * 100:4.1f}"
                        for s in shots)
        print(f"{method:<14}{cells}")
    print()
    from edgeknn.tools.evaluation import BASELINE

    print(f"gain over {BASELINE} (points, mean over seeds; in how many seeds it is ahead):")
    for method in names:
        if method == BASELINE:
            continue
        cells = ""
        for s in shots:
            ours, base = np.array(table[s][method].accuracies), np.array(table[s][BASELINE].accuracies)
            cells += f"{(ours - base).mean() * 100:+11.1f} ({int((ours > base).sum())}/{len(seeds)})"
        print(f"{method:<14}{cells}")
    best = by_shots[shots[-1]][-1]
    print()
    width = max(6, *(len(label) for label in labels))
    print(f"per class ({best.name}, {shots[-1]} shots):")
    for label, acc in zip(labels, best.per_class, strict=True):
        print(f"  {label:<{width}} {acc * 100:6.1f}%")
    print()
    print(f"confusion ({best.name}, {shots[-1]} shots, all seeds; rows true, columns predicted):")
    short = [label[:6] for label in labels]
    print(" " * (width + 2) + " ".join(f"{s:>6}" for s in short))
    for label, row in zip(labels, best.confusion, strict=True):
        print(f"  {label:<{width}}" + " ".join(f"{n:>6}" for n in row))
    print()
