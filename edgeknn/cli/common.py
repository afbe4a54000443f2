"""Arguments and set-up shared by several commands."""

from __future__ import annotations

import argparse
import sys

from edgeknn.cli.flags import CLASSIFIER, EMBEDDER, STORE, add_flags
from edgeknn.config import Config
from edgeknn.store import Store
from edgeknn.vision.embedder import Embedder
from edgeknn.vision.engines import embedder_from_config


def add_store_arg(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, STORE)


def add_embedder_args(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, EMBEDDER, "embedder")


def add_classifier_args(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, CLASSIFIER, "classifier")


def open_store(config: Config, *, create: bool = True, readonly: bool = False) -> Store:
    """The configured store; ``readonly`` for commands that only read (they work beside a
    running service, which holds the writer lock)."""
    return Store.open(config.store.path, create=create, readonly=readonly)


def open_embedder(config: Config) -> Embedder:
    return embedder_from_config(config.embedder, config.models)


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
