"""`edgeknn run` loads the service and nothing of the tools (benchmarks, demo, evaluation, test broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import wait_until, write_service_config


def imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``python -X importtime`` lines: "import time: self | cumulative | name"."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


def test_the_running_service_imports_no_tools(tmp_path, mosquitto, listen):
    config = tmp_path / "config.toml"
    write_service_config(config, tmp_path, mosquitto, """
[detector]
enabled = true
[gpio]
enabled = true
pin_factory = "mock"
buttons = [{pin = 17, label = "cat"}]
""")
    watch = listen("edgeknn/testpi/#")
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "edgeknn", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # every part started, and frames went through the embedder and the detector
        wait_until(lambda: watch.on("edgeknn/testpi/prediction"), what="a prediction")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log = proc.stderr.read()
        proc.stderr.close()
    modules = imported_modules(log)
    # the parts that load only when enabled did load, so the check below covers them
    assert {"edgeknn.service.daemon", "edgeknn.mqtt.client", "edgeknn.gpio", "edgeknn.vision.detector"} <= modules
    assert sorted(m for m in modules if m.startswith("edgeknn.tools")) == []
