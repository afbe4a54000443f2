"""The validated config tree: one TOML file, loaded once, checked strictly.

    cfg = load_config(Path("/etc/edgeknn/config.toml"))   # reads, parses, validates
    cfg = parse_config({"mqtt": {"port": 8883}})           # pure: a dict already parsed
    cfg = Config.default()                                 # what an empty file gives

Every problem is reported as one line that starts with the file and the key
path and says what was expected::

    config.toml: mqtt.port: expected an integer 1..65535, got "abc"
    config.toml: unknown key mqtt.hots (did you mean host?)

All problems are collected, one per line, in a single :class:`ConfigError`.
Validation does no I/O: whether files and devices exist is checked by the part
that uses them, when it starts.

Environment variables override a few keys, so secrets, per-site hosts and a
user's own paths can stay out of the file (a systemd ``EnvironmentFile=``,
say).  :data:`ENV_OVERRIDES` is the one table of them, applied here by
:func:`parse_config`, so ``edgeknn run`` and every command read them alike.
An empty variable counts as unset:

    EDGEKNN_MQTT_HOST      -> mqtt.host
    EDGEKNN_MQTT_PASSWORD  -> mqtt.password
    EDGEKNN_STORE          -> store.path
    EDGEKNN_MODELS_DIR     -> models.dir
    EDGEKNN_MODEL_MIRROR   -> models.mirror

Command-line flags override single keys the same way (``parse_config(...,
flags={"classifier.k": ("--k", 5)})``, see :mod:`edgeknn.cli.flags`), and a bad
value names its flag: ``classifier.k: expected an integer 1..100, got 0 (from --k)``.
So a key's value is, first found: its flag, its environment variable, the
config file, the default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from edgeknn.config.schema import (
    ButtonConfig,
    CameraConfig,
    ClassifierConfig,
    ClearButtonConfig,
    Config,
    DetectorConfig,
    EmbedderConfig,
    GpioConfig,
    HomeAssistantConfig,
    LoggingConfig,
    ModelsConfig,
    MqttConfig,
    MqttQosConfig,
    MqttTlsConfig,
    PipelineConfig,
    StoreConfig,
    WebConfig,
)
from edgeknn.config.validate import build
from edgeknn.errors import ConfigError

__all__ = [
    "DEFAULT_PATH", "ENV_OVERRIDES", "ButtonConfig", "CameraConfig", "ClassifierConfig",
    "ClearButtonConfig", "Config", "DetectorConfig", "EmbedderConfig", "GpioConfig",
    "HomeAssistantConfig", "LoggingConfig", "ModelsConfig", "MqttConfig", "MqttQosConfig", "MqttTlsConfig",
    "PipelineConfig", "StoreConfig", "WebConfig", "example_text", "load_config", "parse_config", "read_toml",
]

DEFAULT_PATH = Path("/etc/edgeknn/config.toml")

# environment variable -> (table, key) it replaces; the only list of them (see the docstring)
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "EDGEKNN_MQTT_HOST": ("mqtt", "host"),
    "EDGEKNN_MQTT_PASSWORD": ("mqtt", "password"),
    "EDGEKNN_STORE": ("store", "path"),
    "EDGEKNN_MODELS_DIR": ("models", "dir"),
    "EDGEKNN_MODEL_MIRROR": ("models", "mirror"),
}

def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a config file; ``env`` defaults to ``os.environ``."""
    return parse_config(read_toml(path), str(path), os.environ if env is None else env)


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's TOML document, not yet validated; ConfigError naming the file if unreadable."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return data


def parse_config(
    data: Mapping[str, Any],
    source: str = "config",
    env: Mapping[str, str] | None = None,
    *,
    flags: Mapping[str, tuple[str, Any]] | None = None,
) -> Config:
    """Validate an already-parsed TOML document; pure (``env`` is only read if given).

    ``flags`` maps key paths to the command-line flag and value that replace
    them (``{"classifier.k": ("--k", 0)}``); they win over the file and the
    environment.  A problem with such a value is reported like any other, but
    ends with the flag instead of starting with ``source``.
    """
    data, from_env = _apply_env(data, env or {})
    from_flags: dict[str, str] = {}
    for key, (flag, value) in (flags or {}).items():
        data = _replaced(data, key.split("."), value)
        from_flags[key] = flag
    config, problems = build(Config, data)
    if problems:
        lines = []
        for line in problems:
            key = re.sub(r"\[\d+\]$", "", line.split(":", 1)[0])  # detector.allow[1] -> its key
            if key in from_flags:
                lines.append(f"{line} (from {from_flags[key]})")
                continue
            suffix = f" (from ${from_env[key]})" if key in from_env else ""
            lines.append(f"{source}: {line}{suffix}" if source else f"{line}{suffix}")
        raise ConfigError("\n".join(lines))
    return config


def _replaced(data: Mapping[str, Any], keys: list[str], value: Any) -> Mapping[str, Any]:
    """A copy of ``data`` with ``value`` at the key path; a non-table on the way is left for the
    validator to report."""
    head, rest = keys[0], keys[1:]
    if not rest:
        return {**data, head: value}
    inner = data.get(head, {})
    if not isinstance(inner, Mapping):
        return data
    return {**data, head: _replaced(inner, rest, value)}


def _apply_env(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """A copy of ``data`` with the environment overrides in; and which keys they set."""
    from_env: dict[str, str] = {}
    for var, (table, key) in ENV_OVERRIDES.items():
        value = env.get(var)
        if not value:
            continue
        current = data.get(table, {})
        if not isinstance(current, dict):
            continue  # the validator reports the table itself
        data = {**data, table: {**current, key: value}}
        from_env[f"{table}.{key}"] = var
    return data, from_env


def example_text() -> str:
    """The documented example config that ships in the package (every key, its default)."""
    return resources.files("edgeknn").joinpath("config.example.toml").read_text(encoding="utf-8")
