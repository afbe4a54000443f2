"""`edgeknn teach DIR` and `edgeknn predict IMAGE...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgeknn.cli.common import (
    Progress,
    add_classifier_args,
    add_embedder_args,
    add_store_arg,
    open_embedder,
    open_store,
)
from edgeknn.cli.flags import load_config
from edgeknn.dataset import load_dataset
from edgeknn.errors import EdgeKnnError, ImageError, StoreError
from edgeknn.head import fit_head
from edgeknn.images import load_image
from edgeknn.mqtt.payloads import prediction_dict
from edgeknn.store import NewExample, Store, make_example
from edgeknn.vision.embedder import Embedder

BATCH = 64

TEACH_EPILOG = """examples:
  edgeknn teach photos/                      # photos/<label>/*.jpg
  edgeknn teach photos/ --limit-per-class 10 --store kitchen.db

Examples are committed in batches of 64; an interrupted teach keeps every
batch it reported as committed.
"""

PREDICT_EPILOG = """examples:
  edgeknn predict mug.jpg
  edgeknn predict shots/*.jpg --json | jq .label
  edgeknn predict img.jpg --k 5 --threshold 0.6
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teach", help="add examples from a folder with one sub-folder per class",
        description="Embed every image under DIR/<label>/ and add it to the store as an example of <label>.",
        epilog=TEACH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", type=Path, help="folder with one sub-folder per class")
    p.add_argument("--limit-per-class", type=int, default=None, metavar="N",
                   help="take at most N images from each class (sorted by name)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images with a warning instead of stopping")
    add_store_arg(p)
    add_embedder_args(p)
    p.set_defaults(func=teach)

    p = sub.add_parser(
        "predict", help="classify images with the taught store",
        description="Print the class the store predicts for each image.",
        epilog=PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_classifier_args(p)
    add_store_arg(p)
    add_embedder_args(p)
    p.set_defaults(func=predict)


def teach(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.limit_per_class is not None and args.limit_per_class < 1:
        raise EdgeKnnError("--limit-per-class must be at least 1")
    classes = load_dataset(args.dir, limit_per_class=args.limit_per_class)
    jobs = [(label, path) for label, paths in classes.items() for path in paths]
    embedder = open_embedder(config)
    with open_store(config) as store:
        store.bind(embedder.info.fingerprint, embedder.info.dim)
        added, skipped = teach_files(store, embedder, jobs, skip_bad=args.skip_bad)
        counts = store.counts()
    summary = ", ".join(f"{label} {counts.get(label, 0)}" for label in classes)
    print(f"added {added} examples to {store.path} ({embedder.info.backend}); classes now: {summary}")
    if skipped:
        print(f"skipped {skipped} unreadable images", file=sys.stderr)
    return 0


def teach_files(
    store: Store, embedder: Embedder, jobs: list[tuple[str, Path]], *, skip_bad: bool = False
) -> tuple[int, int]:
    """Embed and add (label, file) pairs in committed batches; returns (added, skipped)."""
    progress = Progress("teach", len(jobs))
    batch: list[NewExample] = []
    added = skipped = 0
    for done, (label, path) in enumerate(jobs, 1):
        try:
            image = load_image(path)
        except ImageError as exc:
            if not skip_bad:
                if added:
                    raise ImageError(f"{exc} (the {added} examples committed before it are kept)") from None
                raise
            print(f"edgeknn: warning: skipped {exc}", file=sys.stderr)
            skipped += 1
            continue
        batch.append(make_example(label, image, embedder.embed(image), f"teach:{path.name}"))
        if len(batch) >= BATCH:
            added += len(store.add_many(batch))
            batch = []
            progress.update(done, f"committed {added}")
    if batch:
        added += len(store.add_many(batch))
        progress.update(len(jobs), f"committed {added}")
    return added, skipped


def predict(args: argparse.Namespace) -> int:
    config = load_config(args)
    embedder = open_embedder(config)
    failures = 0
    with open_store(config, create=False, readonly=True) as store:
        if not len(store):
            raise StoreError(f"store {store.path} is empty; teach it first: edgeknn teach DIR")
        store.bind(embedder.info.fingerprint, embedder.info.dim)
        features, head = embedder.info.features, None
        if config.classifier.method == "logreg":  # fit the head once, here, before the first image
            raw, labels, version = store.snapshot()
            head = fit_head(raw.astype(np.float32), labels, features, version)
        for path in args.images:
            try:
                embedding = embedder.embed_file(path)
            except ImageError as exc:
                print(f"edgeknn: error: {exc}", file=sys.stderr)
                failures += 1
                continue
            pred = store.predict(embedding, config.classifier, head=head, features=features)
            if args.json:
                print(json.dumps({"image": str(path), **prediction_dict(pred)}), flush=True)
            else:
                label = "unknown" if pred.unknown else pred.label
                nearest = f", nearest {pred.label}" if pred.unknown else ""
                print(f"{path}: {label} (confidence {pred.confidence:.2f}, "
                      f"similarity {pred.similarity:.2f}{nearest})", flush=True)
    return 2 if failures else 0
