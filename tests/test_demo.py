"""The README's first command: `./dev.sh run` teaches three classes and shows the
service naming the held-out photos it replays (python -m edgeknn.tools.demo)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import SHARED


@pytest.mark.slow
def test_the_demo_names_each_held_out_photo_and_each_detected_pet(tmp_path):
    run = subprocess.run([sys.executable, "-m", "edgeknn.tools.demo", str(SHARED), "--seconds", "14",
                          "--work", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    said = dict(re.findall(r"^frame +(\d+)  prediction  (\S+)", run.stdout, flags=re.M))
    # the replay plays cat_test_0, dog_test_0, hotdog_test_0 first, at one frame a second
    assert (said.get("0"), said.get("1"), said.get("2")) == ("cat", "dog", "hotdog"), run.stdout
    assert "(KNN: cat)" in run.stdout and "(KNN: dog)" in run.stdout, run.stdout
    assert "status      offline" in run.stdout  # stopped cleanly, saying so
