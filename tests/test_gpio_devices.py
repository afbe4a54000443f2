"""The GPIO panel on real machines: lgpio's import-time pipe, and no GPIO chip at all.

These load gpiozero's real ``lgpio`` pin factory over tests/stubs/lgpio, which
fails the way lgpio does (see its docstring for the source lines it imitates).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgeknn.errors import GpioError
from edgeknn.gpio import open_pin_factory

STUBS = Path(__file__).parent / "stubs"


@pytest.fixture
def stub_lgpio(monkeypatch):
    monkeypatch.syspath_prepend(str(STUBS))
    for name in ("lgpio", "gpiozero.pins.lgpio"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("lgpio", "gpiozero.pins.lgpio"):
        sys.modules.pop(name, None)


def test_lgpio_that_cannot_make_its_pipe_is_named_with_the_fix(stub_lgpio, monkeypatch):
    monkeypatch.delenv("LG_WD", raising=False)
    monkeypatch.chdir("/proc")  # read-only even for root, as / is for the service user
    with pytest.raises(GpioError) as failed:
        open_pin_factory("")
    message = str(failed.value)
    assert "lgpio cannot make its notification pipe in /proc" in message
    assert "set LG_WD to a writable directory" in message
    assert "install lgpio" not in message  # it is installed


def test_with_lg_wd_set_the_real_reason_is_given(stub_lgpio, monkeypatch, tmp_path):
    monkeypatch.setenv("LG_WD", str(tmp_path))
    monkeypatch.chdir("/proc")
    with pytest.raises(GpioError) as failed:
        open_pin_factory("")
    message = str(failed.value)
    assert "lgd-nfy" not in message and "notification pipe" not in message
    assert message.startswith("no GPIO library works here: ")
    assert (tmp_path / ".lgd-nfy0").exists()  # lgpio's FIFO, where LG_WD said
