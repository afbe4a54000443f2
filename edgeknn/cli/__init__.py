"""The ``edgeknn`` command line.

Each command group lives in its own module here and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with
the parsed arguments, returning an exit code).  Errors derived from
EdgeKnnError print ``edgeknn: error: ...`` (one line per problem) and exit 2.
Commands that share settings with the service read its config file and take
flags that override single keys (see :mod:`edgeknn.cli.flags`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from edgeknn import __version__

# The order here is the order of `edgeknn --help`.
from edgeknn.cli import (  # noqa: E402
    bench,
    config_cmd,
    detect,
    doctor,
    eval_cmd,
    ha_cmd,
    models_cmd,
    run,
    store_cmd,
    teach,
    web_cmd,
)
from edgeknn.config.schema import LOG_LEVELS
from edgeknn.errors import EdgeKnnError

COMMAND_MODULES = (run, teach, eval_cmd, store_cmd, models_cmd, detect, config_cmd, ha_cmd, web_cmd, doctor,
                   bench)

EPILOG = """examples:
  edgeknn teach photos/            # one sub-folder per class
  edgeknn predict snapshot.jpg --json
  edgeknn eval datasets/flower_photos --shots 5
  edgeknn run --config /etc/edgeknn/config.toml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeknn",
        description="A teachable machine for the edge: embed camera frames with MobileNet "
        "(Edge TPU or CPU), classify them with a durable KNN store, publish over MQTT.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgeknn {__version__}")
    parser.add_argument(
        "--log-level", default=None, choices=LOG_LEVELS,
        help="log verbosity (default: warning; for `run`, the config's logging.level)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for command in sub.choices.values():  # also after the command: edgeknn run --log-level debug
        command.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                             help="log verbosity (as before the command)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, (args.log_level or "warning").upper()),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except EdgeKnnError as exc:
        for line in str(exc).splitlines():  # several config problems: one line each, all shown
            print(f"edgeknn: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeknn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgeknn config keys | head`: the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 0
