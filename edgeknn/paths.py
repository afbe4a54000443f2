"""Where an interactive user's store and models live when no config file says.

That is ``$XDG_DATA_HOME/edgeknn`` (``~/.local/share/edgeknn``).  The
service's are the config's defaults (``/var/lib/edgeknn/...``).  The
environment variables that override either (``$EDGEKNN_STORE``,
``$EDGEKNN_MODELS_DIR``) are applied with the config, in one place:
:data:`edgeknn.config.ENV_OVERRIDES`.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_DIR = Path("/var/lib/edgeknn")


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgeknn"


def default_store() -> Path:
    """The user's store file, in their data directory."""
    return data_dir() / "store.db"


def default_models_dir() -> Path:
    """Where models are fetched to for a user without a config file: their data directory."""
    return data_dir() / "models"
