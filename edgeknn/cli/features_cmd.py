"""``edgeknn models features``: compute an embedder's feature transform from a stated image set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgeknn.cli.common import Progress, add_embedder_args, open_embedder
from edgeknn.cli.flags import load_config
from edgeknn.errors import DatasetError, ImageError
from edgeknn.features import FeatureTransform, encode_mean, generic_mean
from edgeknn.images import list_images, load_image

EPILOG = """examples:
  edgeknn models features ../shared/data/datasets/raccoon/images \\
      ../shared/data/datasets/fruit_detection/images
  edgeknn models features --model mobilenet_v2 photos/ --power 0.5

Embeds every image in the folders (centre crop, as the service does) and prints
the manifest lines `feature_power` and `feature_mean` for the embedder's entry:
the mean of the power-transformed embeddings.  Use a few hundred ordinary
photos unrelated to what will be taught; the shipped mean is from the 500
raccoon and fruit photos of the shared data sets.  A changed mean changes the
transform's id, so running services refit their head from the raw embeddings
(nothing taught is lost or mixed).
"""


def add_action(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "features", help="compute an embedder's feature transform from a folder of photos",
        description="Print feature_power and feature_mean for an embedder's manifest entry.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="folders of generic photos")
    p.add_argument("--power", type=float, default=0.5, help="the signed power (default 0.5)")
    add_embedder_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.power <= 1:
        raise DatasetError(f"--power {args.power} must lie in (0, 1]")
    files = [path for folder in args.folders for path in _images(folder)]
    embedder = open_embedder(load_config(args))
    progress = Progress("embed", len(files))
    vectors = []
    for done, path in enumerate(files, 1):
        try:
            vectors.append(embedder.embed(load_image(path)))
        except ImageError as exc:
            print(f"edgeknn: warning: skipped {exc}", file=sys.stderr)
        progress.update(done)
    if not vectors:
        raise DatasetError("none of the images could be read; nothing to average")
    mean = generic_mean(np.stack(vectors), args.power)
    transform = FeatureTransform(args.power, mean)
    print(f"# {transform.id}: mean of {len(vectors)} images from "
          f"{', '.join(str(f) for f in args.folders)} ({embedder.info.fingerprint})")
    print(f"feature_power = {args.power:g}")
    print(f'feature_mean = "{encode_mean(mean)}"')
    return 0


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of images")
    found = list_images(folder)
    if not found:
        raise DatasetError(f"{folder} has no images (.jpg, .png, ...)")
    return found
