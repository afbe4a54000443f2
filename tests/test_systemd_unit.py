"""systemd/edgeknn.service: systemd accepts it, and it says what the daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgeknn.config import ENV_OVERRIDES, Config

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "edgeknn.service"
EXECUTABLE = "/opt/edgeknn/venv/bin/edgeknn"


def service_section() -> dict[str, list[str]]:
    """The [Service] assignments; a key may repeat (DeviceAllow=), so each maps to a list."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)
def test_systemd_analyze_verify_accepts_the_unit_without_warnings(tmp_path):
    # verify insists that ExecStart= exists; the daemon is not installed
    # under /opt here, so a stand-in takes its path and nothing else changes.
    executable = tmp_path / "edgeknn"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / "edgeknn.service"
    text = UNIT.read_text()
    assert EXECUTABLE in text
    unit.write_text(text.replace(EXECUTABLE, str(executable)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and bad values, only warning about them.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_is_a_notify_service_with_a_watchdog():
    service = service_section()
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert int(service["WatchdogSec"][0]) > 0


def test_unit_runs_the_daemon_with_the_system_config():
    (exec_start,) = service_section()["ExecStart"]
    assert exec_start.split() == [EXECUTABLE, "run", "--config", "/etc/edgeknn/config.toml"]


def test_unit_keeps_the_store_and_models_where_the_config_file_says():
    service = service_section()
    assert service["StateDirectory"] == ["edgeknn"]
    defaults = Config.default()
    assert defaults.store.path.parent == defaults.models.dir.parent == Path("/var/lib/edgeknn")
    # the environment wins over the file, so the unit sets none of the variables that override it
    environment = dict(assignment.split("=", 1) for line in service["Environment"] for assignment in line.split())
    overridden = ["/".join(key) for var, key in ENV_OVERRIDES.items() if var in environment]
    assert overridden == []


def test_unit_names_no_supplementary_group_that_may_not_exist():
    # A group missing from /etc/group fails the start with status=216/GROUP
    # (no gpio group on plain Debian); User= already brings the user's groups.
    assert "SupplementaryGroups" not in service_section()


def test_lgpio_gets_a_writable_directory_for_its_notification_pipe():
    # lgpio makes .lgd-nfy* in $LG_WD (else the working directory) when imported;
    # / is read-only under ProtectSystem=strict.
    service = service_section()
    assert service["WorkingDirectory"] == ["/var/lib/edgeknn"]
    assert service["RuntimeDirectory"] == ["edgeknn"]
    assert "LG_WD=/run/edgeknn" in " ".join(service["Environment"]).split()
