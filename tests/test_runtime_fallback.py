"""accelerator = "auto": the CPU when the Edge TPU cannot be used, and the reason in the log.

The "delegate" here is one that LiteRT applies and that handles nothing (a null
native delegate), so the Edge TPU model's custom op stays unresolved: the real
interpreter fails the way it does with a libedgetpu that cannot run the model
(one compiled for a newer runtime).
"""

from __future__ import annotations

import logging

import pytest
from conftest import MODELS

from edgeknn.errors import EdgeTpuError, EdgeTpuModelOnCpu
from edgeknn.vision.runtime import open_interpreter

CPU = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
TPU = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite"


class DelegateThatRunsNothing:
    def _get_native_delegate_pointer(self) -> int:
        return 0


def test_auto_falls_back_to_the_cpu_when_the_delegate_loads_but_the_model_does_not_open(caplog):
    with caplog.at_level(logging.WARNING):
        opened = open_interpreter(CPU, edgetpu_model=TPU, accelerator="auto", threads=1,
                                  delegate_loader=lambda device: DelegateThatRunsNothing())
    assert opened.backend == "cpu" and opened.path == CPU
    [line] = [r.getMessage() for r in caplog.records if "Edge TPU not used" in r.getMessage()]
    assert "the delegate loaded but" in line and "edgetpu-custom-op" in line


def test_edgetpu_still_fails_when_the_model_does_not_open():
    with pytest.raises(EdgeTpuModelOnCpu):
        open_interpreter(CPU, edgetpu_model=TPU, accelerator="edgetpu", threads=1,
                         delegate_loader=lambda device: DelegateThatRunsNothing())


def test_auto_logs_why_the_edge_tpu_is_not_used(caplog):
    def no_access(device):
        raise EdgeTpuError("no Edge TPU found: Failed to open /dev/apex_0: permission denied")

    with caplog.at_level(logging.WARNING):
        opened = open_interpreter(CPU, edgetpu_model=TPU, accelerator="auto", threads=1, delegate_loader=no_access)
    assert opened.backend == "cpu"
    assert any("Edge TPU not used" in r.getMessage() and "/dev/apex_0: permission denied" in r.getMessage()
               for r in caplog.records)
