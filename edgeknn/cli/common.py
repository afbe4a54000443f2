"""Arguments and set-up shared by several commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeknn.images import RESIZE_POLICIES
from edgeknn.paths import default_store
from edgeknn.store import Store
from edgeknn.vision.embedder import Embedder
from edgeknn.vision.engines import build_embedder
from edgeknn.vision.runtime import ACCELERATORS


def add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=Path, default=None,
        help="store file (default: $EDGEKNN_STORE, else ~/.local/share/edgeknn/store.db)",
    )


def add_model_args(parser: argparse.ArgumentParser, what: str, default_resize: str) -> argparse._ArgumentGroup:
    """The options every model takes, in a group titled ``what`` ("embedder", "detector").

    Returns the group so a caller can add the options only its kind of model has.
    """
    g = parser.add_argument_group(what)
    g.add_argument("--model", default=None,
                   help=f"a manifest name or a .tflite path (default: the manifest's default {what})")
    g.add_argument("--edgetpu-model", default=None,
                   help="its Edge TPU compilation (default: the manifest's, if any)")
    g.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="auto: Edge TPU if present, else CPU (default: auto)")
    g.add_argument("--device", default=None, help="Edge TPU device: usb, usb:0, pci:0")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    g.add_argument("--resize", choices=RESIZE_POLICIES, default=default_resize,
                   help=f"how frames are fitted to the model input (default: {default_resize})")
    return g


def add_embedder_args(parser: argparse.ArgumentParser) -> None:
    g = add_model_args(parser, "embedder", default_resize="center-crop")
    g.add_argument("--embedding-tensor", default=None,
                   help="tensor to read the embedding from (default: the manifest's, else the output)")


def store_path(args: argparse.Namespace) -> Path:
    return args.store if args.store is not None else default_store()


def open_store(args: argparse.Namespace, *, create: bool = True, readonly: bool = False) -> Store:
    """The store --store names; ``readonly`` for commands that only read (they work
    beside a running service, which holds the writer lock)."""
    return Store.open(store_path(args), create=create, readonly=readonly)


def embedder_from_args(args: argparse.Namespace) -> Embedder:
    return build_embedder(
        args.model, edgetpu_model=args.edgetpu_model, embedding_tensor=args.embedding_tensor,
        accelerator=args.accelerator, device=args.device, threads=args.threads, resize=args.resize,
    )


class Progress:
    """A one-line progress bar on a terminal; occasional plain lines otherwise (journald, CI)."""

    def __init__(self, what: str, total: int, stream=sys.stderr) -> None:
        self.what, self.total, self.stream = what, total, stream
        self.tty = stream.isatty()
        self._last_line = -1

    def update(self, done: int, note: str = "") -> None:
        if self.tty:
            width = 30
            filled = int(width * done / max(1, self.total))
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.what} [{bar}] {done}/{self.total} {note}")
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif note or done >= self.total or done - self._last_line >= max(1, self.total // 10):
            self._last_line = done
            print(f"{self.what}: {done}/{self.total} {note}".rstrip(), file=self.stream, flush=True)
