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

Environment variables override two keys, so secrets and per-site hosts can
stay out of the file (a systemd ``EnvironmentFile=``, say).  An empty variable
counts as unset:

    EDGEKNN_MQTT_HOST      -> mqtt.host
    EDGEKNN_MQTT_PASSWORD  -> mqtt.password
"""

from __future__ import annotations

import os
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
    "LoggingConfig", "ModelsConfig", "MqttConfig", "MqttQosConfig", "MqttTlsConfig",
    "PipelineConfig", "StoreConfig", "WebConfig", "example_text", "load_config", "parse_config",
]

DEFAULT_PATH = Path("/etc/edgeknn/config.toml")

# environment variable -> (table, key) it replaces
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "EDGEKNN_MQTT_HOST": ("mqtt", "host"),
    "EDGEKNN_MQTT_PASSWORD": ("mqtt", "password"),
}


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a config file; ``env`` defaults to ``os.environ``."""
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
    return parse_config(data, str(path), os.environ if env is None else env)


def parse_config(
    data: Mapping[str, Any], source: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Validate an already-parsed TOML document; pure (``env`` is only read if given)."""
    data, from_env = _apply_env(data, env or {})
    config, problems = build(Config, data)
    if problems:
        lines = []
        for line in problems:
            key = line.split(":", 1)[0]
            suffix = f" (from ${from_env[key]})" if key in from_env else ""
            lines.append(f"{source}: {line}{suffix}")
        raise ConfigError("\n".join(lines))
    return config


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
