"""Default locations: the user's data directory, or /var/lib/edgeknn for the service.

The systemd unit sets EDGEKNN_STORE and EDGEKNN_MODELS_DIR to /var/lib/edgeknn/...;
an interactive user gets $XDG_DATA_HOME/edgeknn (~/.local/share/edgeknn).
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_DIR = Path("/var/lib/edgeknn")


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgeknn"


def default_store() -> Path:
    """The store file: $EDGEKNN_STORE, else the user's data directory."""
    env = os.environ.get("EDGEKNN_STORE")
    return Path(env) if env else data_dir() / "store.db"


def default_models_dir() -> Path:
    """Where models are fetched to: $EDGEKNN_MODELS_DIR, else the user's data directory."""
    env = os.environ.get("EDGEKNN_MODELS_DIR")
    return Path(env) if env else data_dir() / "models"
