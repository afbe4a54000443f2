"""``edgeknn models list|fetch``: the manifest, and downloading models into the models dir."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from edgeknn.cli import features_cmd
from edgeknn.cli.flags import MODELS_DIR, Flag, add_flags, load_config
from edgeknn.vision import models

LIST_EPILOG = """examples:
  edgeknn models list
  edgeknn models list --models-dir /var/lib/edgeknn/models

status: verified (present, sha256 matches), MISMATCH (present, wrong sha256:
delete it and fetch again), absent (not fetched yet).  Exit status 1 if any
file fails its checksum.
"""

FETCH_EPILOG = """examples:
  edgeknn models fetch                       # every model in the manifest
  edgeknn models fetch --kind embedder       # only the embedders
  edgeknn models fetch mobilenet_v2          # one model (and the labels it names)
  edgeknn models fetch --mirror /media/usb/models     # a directory holding the files
  edgeknn models fetch --mirror https://example.lan/models

Files already present and verified are skipped (use --force to download anyway).
Each download is checked against the manifest's sha256 before it is kept.
Without --mirror, $EDGEKNN_MODEL_MIRROR is used if set, else the config file's
models.mirror, else each model's URL.
"""


EPILOG = """examples:
  edgeknn models list
  edgeknn models fetch
  edgeknn models fetch mobilenet_v2 --mirror /media/usb/models

See `edgeknn models ACTION --help` for each action.
"""


def _models_dir(args: argparse.Namespace) -> Path:
    return load_config(args).models.dir


def list_models(args: argparse.Namespace) -> int:
    manifest = models.load_manifest()
    models_dir = _models_dir(args)
    rows = [("NAME", "KIND", "EDGETPU", "DEFAULT", "STATUS")]
    statuses = []
    for info in manifest.values():
        status = models.file_status(info, models_dir)
        statuses.append(status)
        rows.append((info.name, info.kind, "yes" if info.edgetpu else "no",
                     "yes" if info.default else "", "MISMATCH" if status == "mismatch" else status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"models directory: {models_dir}")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 1 if "mismatch" in statuses else 0


class _Progress:
    """Progress on stderr: a rewritten line on a terminal, nothing per chunk otherwise."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name, self.stream = name, stream
        self.is_tty = stream.isatty()
        self.last_percent = -1

    def __call__(self, done: int, total: int | None) -> None:
        if not self.is_tty:
            return
        percent = done * 100 // total if total else -1
        if percent != self.last_percent:
            self.last_percent = percent
            shown = f"{percent:3d}%" if total else f"{done / 1e6:.1f} MB"
            self.stream.write(f"\r  {self.name}: {shown}")
            self.stream.flush()

    def finish(self) -> None:
        if self.is_tty and self.last_percent != -1:
            self.stream.write("\r\033[K")


def fetch_models(args: argparse.Namespace) -> int:
    manifest = models.load_manifest()
    config = load_config(args).models
    models_dir, mirror = config.dir, config.mirror or None
    chosen = models.select(manifest, args.names, args.kind)
    err = sys.stderr
    if not chosen:
        print(f"no {args.kind} models in the manifest", file=err)
        return 0
    for info in chosen:
        if not args.force and models.file_status(info, models_dir) == "verified":
            print(f"{info.name}: already present, sha256 ok", file=err)
            continue
        print(f"{info.name}: fetching from {models.source_url(info, mirror)}", file=err)
        progress = _Progress(info.name, err)
        try:
            path = models.fetch(info, models_dir, mirror=mirror, progress=progress)
        finally:
            progress.finish()
        print(f"{info.name}: {_size(path.stat().st_size)}, sha256 ok -> {path}", file=err)
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _add_models_dir(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, MODELS_DIR)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's parser(s) to the edgeknn command line."""
    group = sub.add_parser("models", help="list and fetch the models edgeknn knows",
                           description="The models in edgeknn's manifest, and fetching them.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = group.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    lister = actions.add_parser(
        "list", help="show the manifest and which models are present and verified",
        description="Show every manifest entry and whether its file is in the models\n"
        "directory with the right sha256.",
        epilog=LIST_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_models_dir(lister)
    lister.set_defaults(func=list_models)

    fetcher = actions.add_parser(
        "fetch", help="download models and check their sha256",
        description="Download models into the models directory; a file is kept only if its\n"
        "sha256 matches the manifest.",
        epilog=FETCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetcher.add_argument("names", nargs="*", metavar="NAME",
                         help="manifest names (default: all); see: edgeknn models list")
    fetcher.add_argument("--kind", choices=models.KINDS, help="only models of this kind")
    add_flags(fetcher, [Flag("--mirror", "models.mirror", metavar="DIR_OR_URL",
                             help="download from this directory or URL instead (default: "
                             "$EDGEKNN_MODEL_MIRROR, else the config file's models.mirror, "
                             "else each model's URL)")])
    fetcher.add_argument("--force", action="store_true",
                         help="download even if a verified file is present")
    _add_models_dir(fetcher)
    fetcher.set_defaults(func=fetch_models)
    features_cmd.add_action(actions)
