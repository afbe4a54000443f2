"""Flags that override config keys, and the config the commands share with the service.

A command that uses what the service uses (the store, the embedder, the
classifier, the detector, the models directory) reads the same config file:
``--config FILE``, else the service's ``/etc/edgeknn/config.toml`` (or the
file ``$EDGEKNN_CONFIG`` names) when this user can read it.  Each flag given
replaces one key.  The flags are made from the schema, so their type,
choices, help and default come from where the key is defined, and a bad value
gets the config's own message::

    $ edgeknn predict mug.jpg --k 0
    edgeknn: error: classifier.k: expected an integer 1..100, got 0 (from --k)

Without a config file the keys keep their defaults, except the two paths: an
interactive user's store and models live in their own data directory
(``~/.local/share/edgeknn``), not in the service's ``/var/lib/edgeknn``.  The
environment variables of :data:`edgeknn.config.ENV_OVERRIDES` win over the
file (or those defaults), and a flag over both, as in ``edgeknn run``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from edgeknn import paths
from edgeknn.config import DEFAULT_PATH, Config, parse_config, read_toml
from edgeknn.config.validate import rule_of, shown

FLAGS_DEST = "config_flags"  # where a parser keeps the flags it was given
CONFIG_ENV = "EDGEKNN_CONFIG"


@dataclass(frozen=True)
class Flag:
    """``--name`` replaces config key ``key``; ``default`` (if not None) is the command's own."""

    name: str
    key: str
    help: str = ""  # replaces the key's doc and default
    default: object = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.key  # never clashes with a command's own arguments


STORE = (Flag("--store", "store.path", "store file (default: $EDGEKNN_STORE, else the config "
              "file's store.path, else ~/.local/share/edgeknn/store.db)"),)
MODELS_DIR = (Flag("--models-dir", "models.dir", "where models live, fetched there if missing "
                   "(default: $EDGEKNN_MODELS_DIR, else the config file's models.dir, else "
                   "~/.local/share/edgeknn/models)"),)
EMBEDDER = tuple(Flag(f"--{name.replace('_', '-')}", f"embedder.{name}") for name in (
    "model", "edgetpu_model", "embedding_tensor", "accelerator", "device", "threads", "resize"))
CLASSIFIER = (Flag("--k", "classifier.k"), Flag("--method", "classifier.method"),
              Flag("--threshold", "classifier.unknown_threshold"))
DETECTOR = tuple(Flag(f"--{name.replace('_', '-')}", f"detector.{name}") for name in (
    "model", "labels", "edgetpu_model", "accelerator", "device", "threads", "resize"))


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    if parser.get_default(FLAGS_DEST) is None:
        parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                            help=f"the config file whose settings this command shares with the service "
                            f"(default: ${CONFIG_ENV}, else {DEFAULT_PATH}, if readable)")
        parser.set_defaults(**{FLAGS_DEST: ()})


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[Flag], title: str | None = None) -> None:
    """Add ``flags`` (and ``--config``) to ``parser``, in an argument group if ``title`` is given."""
    add_config_arg(parser)
    target = parser.add_argument_group(title) if title else parser
    flags = tuple(flags)
    for flag in flags:
        tp, f, default = _key(flag.key)
        rule = rule_of(f)
        metavar = flag.metavar or flag.key.rsplit(".", 1)[-1].upper()
        options: dict[str, Any] = {"dest": flag.dest, "default": flag.default, "metavar": metavar}
        if get_origin(tp) is tuple:
            options["nargs"] = "+"
        elif tp in (int, float):
            options["type"] = tp
        if rule.choices is not None:  # shown, not enforced: a bad one gets the config's message
            options["metavar"] = "{" + ",".join(c for c in rule.choices if c) + "}"
        if flag.help:
            options["help"] = flag.help
        elif flag.default is not None:
            options["help"] = f"{rule.doc} (default {shown(flag.default)})"
        else:
            options["help"] = f"{rule.doc} (default: {flag.key} of the config, {shown(_as_toml(default))})"
        target.add_argument(flag.name, **options)
    parser.set_defaults(**{FLAGS_DEST: (*parser.get_default(FLAGS_DEST), *flags)})


def load_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Config:
    """The config file (see the module docstring) with the command's flags applied."""
    env = os.environ if env is None else env
    path = config_file(args.config, env)
    if path is None:
        data: dict[str, Any] = {"store": {"path": str(paths.default_store())},
                                "models": {"dir": str(paths.default_models_dir())}}
        source = ""
    else:
        data, source = read_toml(path), str(path)
    overrides: dict[str, tuple[str, Any]] = {}
    for flag in getattr(args, FLAGS_DEST, ()):
        value = getattr(args, flag.dest)
        if value is not None:
            overrides[flag.key] = (flag.name, str(value) if isinstance(value, Path) else value)
    return parse_config(data, source, env, flags=overrides)


def config_file(given: Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``given`` (which must then be readable), else the service's file if this user can read it,
    else None.  ``$EDGEKNN_CONFIG`` names another file to look for instead of the service's."""
    if given is not None:
        return given
    env = os.environ if env is None else env
    default = Path(env.get(CONFIG_ENV) or DEFAULT_PATH)
    return default if os.access(default, os.R_OK) and default.is_file() else None


def _key(key: str) -> tuple[Any, Any, Any]:
    """The type, the dataclass field and the default of a config key path."""
    cls: Any = Config
    value: Any = Config.default()
    for part in key.split("."):
        f = next(f for f in fields(cls) if f.name == part)
        tp = get_type_hints(cls)[part]
        value = getattr(value, part)
        cls = tp
    assert not is_dataclass(tp), f"{key} is a table, not a key"
    return tp, f, value


def _as_toml(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
