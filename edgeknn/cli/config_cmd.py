"""``edgeknn config check|example|keys``: validate a config file without starting anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeknn.config import DEFAULT_PATH, ENV_OVERRIDES, Config, example_text, load_config
from edgeknn.config.validate import expected, rule_of, shown, walk

EPILOG = """examples:
  edgeknn config check /etc/edgeknn/config.toml
  edgeknn config example > config.toml
  edgeknn config keys | grep detector

See `edgeknn config ACTION --help` for each action.
"""

CHECK_EPILOG = f"""examples:
  edgeknn config check                         # {DEFAULT_PATH}
  edgeknn config check ./config.toml
  EDGEKNN_MQTT_HOST=broker.lan edgeknn config check ./config.toml

Environment overrides ({", ".join(ENV_OVERRIDES)}) apply as in
`edgeknn run`.
"""

EXAMPLE_EPILOG = """examples:
  edgeknn config example > config.toml
  edgeknn config example | sudo tee /etc/edgeknn/config.toml

Every key is shown at its default: change what you need, delete the rest.
"""

KEYS_EPILOG = """examples:
  edgeknn config keys
  edgeknn config keys | grep -A1 '^gpio'
"""


def register(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        "config", help="check a config file, or print the documented example",
        description="Check an edgeknn config file, or print the example with every key.",
        epilog=EPILOG, formatter_class=raw,
    )
    commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    check = commands.add_parser(
        "check", help="validate a config file (with the environment overrides) and exit",
        description="Validate FILE as `edgeknn run` would, without opening cameras, models\n"
        "or brokers.  Prints 'FILE: ok' (exit 0) or one line per problem (exit 2).",
        epilog=CHECK_EPILOG, formatter_class=raw,
    )
    check.add_argument("file", type=Path, nargs="?", default=DEFAULT_PATH, metavar="FILE",
                       help=f"the config file (default: {DEFAULT_PATH})")
    check.set_defaults(func=run_check)

    example = commands.add_parser(
        "example", help="print the example config, every key documented",
        description="Print a complete config file: every key at its default, with a comment\n"
        "saying what it does.",
        epilog=EXAMPLE_EPILOG, formatter_class=raw,
    )
    example.set_defaults(func=run_example)

    keys = commands.add_parser(
        "keys", help="list every key with its type, range and default",
        description="List every config key path with its type, allowed values, default and\n"
        "what it does.",
        epilog=KEYS_EPILOG, formatter_class=raw,
    )
    keys.set_defaults(func=run_keys)


def run_check(args: argparse.Namespace) -> int:
    load_config(args.file)  # its ConfigError has one line per problem, which main() prints each
    print(f"{args.file}: ok")
    return 0


def run_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_text())
    return 0


def run_keys(args: argparse.Namespace) -> int:
    defaults = Config.default()
    for path, f, tp in walk(Config):
        default = _default_of(defaults, path)
        rule = rule_of(f)
        text = "(required)" if default is None else shown(default)
        print(f"{path:28} {expected(tp, rule)}; default {text}")
        if rule.doc:
            print(f"{'':28} {rule.doc}")
    return 0


def _default_of(config: Config, path: str) -> object | None:
    """The default at a key path, or None inside an array of tables (no defaults there)."""
    value: object = config
    for part in path.split("."):
        if part.endswith("[]"):
            return _field_default(path)
        value = getattr(value, part)
    return str(value) if isinstance(value, Path) else value  # shown() quotes strings


def _field_default(path: str) -> object | None:
    from dataclasses import MISSING

    for p, f, _ in walk(Config):
        if p == path:
            return None if f.default is MISSING else f.default
    return None
