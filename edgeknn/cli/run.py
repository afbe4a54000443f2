"""`edgeknn run`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeknn.config import DEFAULT_PATH

EPILOG = """examples:
  edgeknn run                                   # /etc/edgeknn/config.toml
  edgeknn run --config ./config.toml --log-level debug
  edgeknn config example > config.toml          # every key, documented

SIGTERM or SIGINT stops it (publishing "offline"); SIGHUP reloads what can
change while running (classifier, smoothing, prediction interval, log level).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the daemon: camera -> embedder -> KNN -> MQTT",
        description="Watch the camera, publish predictions over MQTT, learn from buttons and MQTT commands.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=DEFAULT_PATH, metavar="FILE",
                   help=f"config file (default {DEFAULT_PATH})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeknn.service import daemon

    return daemon.run(args.config, log_level=args.log_level)
