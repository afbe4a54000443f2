"""Edge TPU discovery on a fake /sys and /dev, the libedgetpu pairing rule, and `edgeknn doctor`."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import MODELS

from edgeknn.cli import main
from edgeknn.cli.doctor import collect
from edgeknn.vision import edgetpu_info, models, runtime
from edgeknn.vision.edgetpu_info import (
    DelegateProbe,
    delegate_compat,
    find_edge_tpus,
    parse_dpkg_query,
    parse_libedgetpu_version,
    usb_state,
)

# --------------------------------------------------------------------------- pairing rule

COMPAT_CASES = [
    # (libedgetpu, interpreter version, interpreter name, ok, words in the message)
    (None, "2.14.0", "tflite-runtime", True, "not installed"),
    ("16.0", "2.5.0.post1", "tflite-runtime", True, "working pair"),
    ("16.0", "2.11.1", "tflite-runtime", True, "working pair"),
    ("16.0", "2.12.0", "tflite-runtime", False, "segfault"),
    ("16.0", "2.14.0", "tflite-runtime", False, "segfault"),
    ("16.0tf2.17.1-1.bookworm", "2.17.1", "tflite-runtime", True, "matching"),
    ("16.0TF2.15.1-1", "2.15.0", "tflite-runtime", True, "matching"),
    ("16.0tf2.17.1-1.bookworm", "2.14.0", "tflite-runtime", True, "in that range"),
    ("16.0tf2.17.1-1.bookworm", "2.18.0", "tflite-runtime", False, "outside"),
    ("16.0tf2.17.1-1.bookworm", "2.9.0", "tflite-runtime", False, "outside"),
    ("16.0", "2.3.0", "ai-edge-litert", False, "segfault"),
    ("16.0tf2.19.1-1.bookworm", "2.3.0", "ai-edge-litert", True, "cannot be verified"),
    ("who knows", "2.14.0", "tflite-runtime", True, "cannot be checked"),
    ("16.0", "nightly", "tflite-runtime", True, "cannot be checked"),
]


@pytest.mark.parametrize(("lib", "version", "name", "ok", "words"), COMPAT_CASES)
def test_delegate_compat(lib, version, name, ok, words):
    is_ok, message = delegate_compat(lib, version, name)
    assert is_ok is ok
    assert words in message


def test_a_mismatch_message_names_both_versions_and_the_docs():
    _, message = delegate_compat("16.0tf2.17.1-1.bookworm", "2.18.0")
    assert "16.0tf2.17.1-1.bookworm" in message and "2.18.0" in message
    assert "docs/edgetpu.md" in message


@pytest.mark.parametrize(
    ("raw", "runtime_version", "tf"),
    [
        ("16.0", "16.0", None),
        ("15.0", "15.0", None),
        ("16.0tf2.17.1-1.bookworm", "16.0", (2, 17, 1)),
        ("16.0TF2.15.1-1", "16.0", (2, 15, 1)),
        ("16.0tf2.16.0rc0-1", "16.0", (2, 16, 0)),
    ],
)
def test_parse_libedgetpu_version(raw, runtime_version, tf):
    parsed = parse_libedgetpu_version(raw)
    assert parsed is not None
    assert (parsed.runtime, parsed.tf) == (runtime_version, tf)


def test_parse_dpkg_query_keeps_only_installed_packages():
    output = ("libedgetpu1-std:arm64\tinstall ok installed\t16.0tf2.17.1-1.bookworm\n"
              "libedgetpu1-max\tdeinstall ok config-files\t16.0\n")
    assert parse_dpkg_query(output) == [("libedgetpu1-std", "16.0tf2.17.1-1.bookworm")]


def test_libedgetpu_package_reads_dpkg_query():
    def dpkg(argv, **kwargs):
        assert argv[:2] == ["dpkg-query", "-W"]
        return subprocess.CompletedProcess(argv, 1, "libedgetpu1-max\tinstall ok installed\t16.0\n",
                                           "dpkg-query: no packages found matching x\n")
    assert edgetpu_info.libedgetpu_package(run=dpkg) == ("libedgetpu1-max", "16.0")


def test_libedgetpu_package_without_dpkg_is_none():
    def no_dpkg(argv, **kwargs):
        raise FileNotFoundError(argv[0])
    assert edgetpu_info.libedgetpu_package(run=no_dpkg) is None


# --------------------------------------------------------------------------- discovery

def test_usb_state_knows_both_coral_ids():
    assert "not loaded" in usb_state("1a6e", "089a")
    assert "loaded" in usb_state("18D1", "9302\n")
    assert usb_state("1d6b", "0002") is None


def _usb(sys_root: Path, name: str, vendor: str, product: str, bus: int, dev: int) -> Path:
    device = sys_root / "bus" / "usb" / "devices" / name
    device.mkdir(parents=True)
    for key, value in (("idVendor", vendor), ("idProduct", product),
                       ("busnum", str(bus)), ("devnum", str(dev))):
        (device / key).write_text(value + "\n")
    return device


def _pci(sys_root: Path, name: str, vendor: str, device_id: str) -> Path:
    device = sys_root / "bus" / "pci" / "devices" / name
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    (device / "device").write_text(device_id + "\n")
    return device


@pytest.fixture
def roots(tmp_path):
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    (sys_root / "bus" / "usb" / "devices").mkdir(parents=True)
    dev_root.mkdir()
    return sys_root, dev_root


def test_no_devices_on_an_empty_tree(roots):
    assert find_edge_tpus(*roots) == []


def test_finds_usb_corals_before_and_after_firmware_load(roots):
    sys_root, dev_root = roots
    _usb(sys_root, "1-1", "1d6b", "0002", 1, 1)  # a root hub: not a Coral
    _usb(sys_root, "2-1", "1a6e", "089a", 2, 3)
    _usb(sys_root, "2-2", "18d1", "9302", 2, 4)
    node = dev_root / "bus" / "usb" / "002" / "004"
    node.parent.mkdir(parents=True)
    node.write_bytes(b"")
    devices = find_edge_tpus(sys_root, dev_root)
    assert [(d.kind, Path(d.path).name) for d in devices] == [("usb", "2-1"), ("usb", "2-2")]
    assert "not loaded" in devices[0].state and devices[0].is_accessible is None
    assert "firmware loaded" in devices[1].state and devices[1].is_accessible is True


@pytest.mark.skipif(os.geteuid() == 0, reason="root can open any file")
def test_an_unopenable_usb_node_is_reported(roots):
    sys_root, dev_root = roots
    _usb(sys_root, "2-2", "18d1", "9302", 2, 4)
    node = dev_root / "bus" / "usb" / "002" / "004"
    node.parent.mkdir(parents=True)
    node.write_bytes(b"")
    node.chmod(0o400)
    assert find_edge_tpus(sys_root, dev_root)[0].is_accessible is False


def test_finds_pcie_apex_nodes(roots):
    sys_root, dev_root = roots
    _pci(sys_root, "0000:01:00.0", "0x1ac1", "0x089a")
    _pci(sys_root, "0000:00:00.0", "0x14e4", "0x2712")
    (dev_root / "apex_0").write_bytes(b"")
    devices = find_edge_tpus(sys_root, dev_root)
    assert [(d.kind, d.path) for d in devices] == [("pci", str(dev_root / "apex_0"))]


def test_a_pcie_card_without_its_driver_says_how_to_fix_it(roots):
    sys_root, dev_root = roots
    _pci(sys_root, "0000:01:00.0", "0x1ac1", "0x089a")
    [device] = find_edge_tpus(sys_root, dev_root)
    assert device.kind == "pci" and "gasket-dkms" in device.state


# --------------------------------------------------------------------------- the probe

def test_probe_reports_a_missing_libedgetpu():
    if ctypes.util.find_library("edgetpu"):
        pytest.skip("libedgetpu is installed on this machine")
    probe = edgetpu_info.probe_delegate()
    assert probe.status == "missing"
    assert "libedgetpu" in probe.message


def test_probe_reports_a_crash_instead_of_dying(tmp_path):
    segfaulting = tmp_path / "python"
    segfaulting.write_text("#!/bin/sh\nkill -SEGV $$\n")
    segfaulting.chmod(0o755)
    probe = edgetpu_info.probe_delegate(python=str(segfaulting))
    assert probe.status == "crashed" and "signal 11" in probe.message


def test_probe_reports_a_hang_as_a_timeout(tmp_path):
    hanging = tmp_path / "python"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    assert edgetpu_info.probe_delegate(timeout=0.5, python=str(hanging)).status == "timeout"


# --------------------------------------------------------------------------- collect()

MISSING = DelegateProbe("missing", "libedgetpu.so.1: cannot open shared object file")


def _collect(roots, models_dir, probe=MISSING, package=None):
    return collect(models_dir, sys_root=roots[0], dev_root=roots[1],
                   probe=lambda: probe, package=lambda: package)


def test_cpu_only_machine_is_usable(roots, tmp_path):
    report = _collect(roots, tmp_path / "models")
    assert report.is_usable and report.backend == "cpu"
    assert report.interpreter["name"] == runtime.interpreter_package().name


def test_an_attached_coral_without_libedgetpu_is_a_warning(roots, tmp_path):
    _usb(roots[0], "2-1", "1a6e", "089a", 2, 3)
    report = _collect(roots, tmp_path / "models")
    assert report.is_usable
    assert any(f.level == "warning" and "not installed" in f.message for f in report.findings)


def test_a_crashing_delegate_is_broken(roots, tmp_path):
    crashed = DelegateProbe("crashed", "died of signal 11")
    assert not _collect(roots, tmp_path / "models", probe=crashed).is_usable


def test_a_bad_pairing_breaks_only_when_a_tpu_is_there(roots, tmp_path):
    interp = runtime.interpreter_package()
    bad_lib = "16.0"  # Coral's build: crashes with any ai-edge-litert or tflite-runtime >= 2.12
    if delegate_compat(bad_lib, interp.version, interp.name)[0]:
        pytest.skip(f"{interp.name} {interp.version} is an old interpreter that pairs with 16.0")
    no_device = DelegateProbe("no-device", "no Edge TPU found")
    report = _collect(roots, tmp_path / "models", no_device, ("libedgetpu1-std", bad_lib))
    assert report.is_usable and report.pairing["ok"] is False
    _usb(roots[0], "2-1", "18d1", "9302", 2, 3)
    report = _collect(roots, tmp_path / "models", no_device, ("libedgetpu1-std", bad_lib))
    assert not report.is_usable


def test_a_present_model_with_a_wrong_checksum_is_broken(roots, tmp_path):
    models_dir = tmp_path / "models"
    info = models.load_manifest()["mobilenet_v1_tiny"]
    models.fetch(info, models_dir, mirror=str(MODELS))
    assert _collect(roots, models_dir).is_usable
    (models_dir / info.file).write_bytes(b"truncated")
    report = _collect(roots, models_dir)
    assert not report.is_usable
    assert any(info.file in f.message for f in report.findings if f.level == "error")


# --------------------------------------------------------------------------- the command

def test_doctor_here_reports_the_cpu_interpreter_and_exits_0(capsys, tmp_path):
    models_dir = tmp_path / "models"
    assert main(["models", "fetch", "--kind", "embedder", "--models-dir", str(models_dir)]) == 0
    capsys.readouterr()
    assert main(["doctor", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    interp = runtime.interpreter_package()
    assert f"interpreter  {interp.name} {interp.version}" in out
    assert "mobilenet_v1_embedder          verified" in out
    assert "result: usable" in out


def test_doctor_json(capsys, tmp_path, roots):
    _usb(roots[0], "2-1", "1a6e", "089a", 2, 3)
    argv = ["doctor", "--json", "--models-dir", str(tmp_path / "models"),
            "--sys-root", str(roots[0]), "--dev-root", str(roots[1])]
    code = main(argv)
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["usable"] else 1)
    assert report["interpreter"]["name"] == runtime.interpreter_package().name
    assert [d["path"] for d in report["devices"]] == [str(roots[0] / "bus/usb/devices/2-1")]
    assert {m["status"] for m in report["models"]} == {"absent", "composite"}  # nothing fetched yet


def test_doctor_exits_1_on_a_corrupted_model(capsys, tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite").write_bytes(b"x")
    assert main(["doctor", "--models-dir", str(models_dir)]) == 1
    assert "ERROR:" in capsys.readouterr().out


def test_doctor_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "edgeknn doctor --json" in capsys.readouterr().out
