"""What Edge TPU hardware and software this machine has, and whether they fit together.

Pure parsing (USB ids, libedgetpu version strings, the interpreter pairing
rule) is kept apart from the readers of /sys, /dev and dpkg, whose roots are
arguments so tests can point them at a fake tree.

The delegate is probed in a child process: a libedgetpu built against another
TensorFlow than the interpreter can segfault, and the doctor must report that
rather than die of it.

Why the pairing matters: Coral's stock ``libedgetpu1-std 16.0`` was built
against TensorFlow 2.5 and is reported to segfault with tflite-runtime 2.12 and
later (google-coral/edgetpu#812).  Community builds (github.com/feranick/
libedgetpu) carry the TensorFlow version in their package version, e.g.
``16.0tf2.17.1-1.bookworm``; their author states each is compatible with
tflite-runtime from 2.11.1 up to the TensorFlow version it was built against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

USB_STATES = {
    ("1a6e", "089a"): "USB, firmware not loaded yet (it loads when the delegate opens it)",
    ("18d1", "9302"): "USB, firmware loaded",
}
PCI_ID = ("0x1ac1", "0x089a")
LIBEDGETPU_PACKAGES = ("libedgetpu1-std", "libedgetpu1-max",
                       "libedgetpu1-legacy-std", "libedgetpu1-legacy-max")
LAST_TF_FOR_STOCK = (2, 11)  # newest tflite-runtime reported to work with Coral's 16.0
OLDEST_TF_FOR_COMMUNITY = (2, 11)  # feranick: "compatible with tflite_runtime from v2.11.1"
DOCS = "docs/edgetpu.md"


@dataclass(frozen=True)
class EdgeTpuDevice:
    kind: Literal["usb", "pci"]
    path: str  # the sysfs device (USB, PCI without driver) or the /dev/apex_N node
    state: str
    is_accessible: bool | None = None  # can this user open the device node? None: unknown


@dataclass(frozen=True)
class LibEdgeTpuVersion:
    raw: str
    runtime: str  # "16.0"
    tf: tuple[int, ...] | None  # the TensorFlow it was built against; None for Coral's own


@dataclass(frozen=True)
class DelegateProbe:
    status: Literal["loaded", "missing", "no-device", "no-interpreter", "crashed", "timeout",
                    "error"]
    message: str
    pycoral_devices: tuple[str, ...] | None = None  # None: pycoral is not installed

    @property
    def is_loaded(self) -> bool:
        return self.status == "loaded"


# --------------------------------------------------------------------------- pure parsing

def usb_state(vendor: str, product: str) -> str | None:
    """The Coral state for a USB vendor:product pair, or None if it is not a Coral."""
    return USB_STATES.get((vendor.strip().lower(), product.strip().lower()))


def parse_tf_version(version: str) -> tuple[int, ...] | None:
    """``"2.14.0"`` -> (2, 14, 0); ``"2.5.0.post1"`` -> (2, 5, 0); junk -> None."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def parse_libedgetpu_version(version: str) -> LibEdgeTpuVersion | None:
    """Split a libedgetpu package version into runtime and TensorFlow build versions.

    ``16.0`` (Coral's build), ``16.0tf2.17.1-1.bookworm`` and ``16.0TF2.15.1-1``
    (community builds) are understood; anything else gives None.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)*)(?:tf(\d+\.\d+(?:\.\d+)?)\S*|[-+~]\S*)?\s*",
                         version, flags=re.IGNORECASE)
    if not match:
        return None
    tf = parse_tf_version(match.group(2)) if match.group(2) else None
    return LibEdgeTpuVersion(version.strip(), match.group(1), tf)


def _v(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def delegate_compat(
    libedgetpu_version: str | None,
    interpreter_version: str,
    interpreter_name: str = "tflite-runtime",
) -> tuple[bool, str]:
    """Whether this libedgetpu and this interpreter are a known-safe pair, and why.

    ``ok`` is False only for a pairing known to crash or outside what the
    libedgetpu build states it supports.  ``interpreter_name`` matters because
    ai-edge-litert numbers its releases apart from TensorFlow.
    """
    if libedgetpu_version is None:
        return True, "libedgetpu is not installed: only the CPU can be used"
    lib = parse_libedgetpu_version(libedgetpu_version)
    if lib is None:
        return True, (f"libedgetpu {libedgetpu_version!r} is not a version edgeknn understands; "
                      "its pairing with the interpreter cannot be checked")
    fix = (f"install a libedgetpu built for your interpreter, or the interpreter your "
           f"libedgetpu was built for (see {DOCS})")
    if interpreter_name == "ai-edge-litert":
        if lib.tf is None:
            return False, (f"libedgetpu {lib.raw} is Coral's build for TensorFlow 2.5; every "
                           f"ai-edge-litert is built from a far newer TensorFlow and the delegate "
                           f"is expected to segfault: {fix}")
        return True, (f"libedgetpu {lib.raw} was built against TensorFlow {_v(lib.tf)}; "
                      f"ai-edge-litert {interpreter_version} does not say which TensorFlow it is "
                      f"built from, so the pairing cannot be verified (if the Edge TPU crashes, "
                      f"use tflite-runtime {_v(lib.tf)})")
    interp = parse_tf_version(interpreter_version)
    if interp is None:
        return True, (f"{interpreter_name} version {interpreter_version!r} is not understood; "
                      "the pairing cannot be checked")
    have = f"{interpreter_name} {interpreter_version}"
    if lib.tf is None:
        if interp[:2] <= LAST_TF_FOR_STOCK:
            return True, f"libedgetpu {lib.raw} (Coral's build) and {have} are a working pair"
        return False, (f"libedgetpu {lib.raw} is Coral's build for TensorFlow 2.5 and segfaults "
                       f"with tflite-runtime 2.12 and later; {have} is newer: {fix}")
    if interp[:2] == lib.tf[:2]:
        return True, f"libedgetpu {lib.raw} was built for {have}: a matching pair"
    if OLDEST_TF_FOR_COMMUNITY <= interp[:2] < lib.tf[:2]:
        return True, (f"libedgetpu {lib.raw} (TensorFlow {_v(lib.tf)}) states support for "
                      f"tflite-runtime 2.11.1 to {_v(lib.tf)}; {have} is in that range, though "
                      f"an exact match ({_v(lib.tf)}) is the tested pair")
    return False, (f"libedgetpu {lib.raw} was built against TensorFlow {_v(lib.tf)} and "
                   f"supports tflite-runtime 2.11.1 to {_v(lib.tf)}; {have} is outside that "
                   f"range and may segfault: {fix}")


def parse_dpkg_query(output: str) -> list[tuple[str, str]]:
    """(package, version) of installed packages in ``${Package}\\t${Status}\\t${Version}`` lines."""
    installed = []
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].strip().endswith(" installed") and parts[2].strip():
            installed.append((parts[0].split(":")[0].strip(), parts[2].strip()))
    return installed


# --------------------------------------------------------------------------- readers

def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _accessible(node: Path) -> bool | None:
    return os.access(node, os.R_OK | os.W_OK) if node.exists() else None


def find_usb(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[EdgeTpuDevice]:
    """Coral USB Accelerators, from /sys/bus/usb/devices/*/idVendor and idProduct."""
    found = []
    for device in sorted((sys_root / "bus" / "usb" / "devices").glob("*")):
        vendor, product = _read(device / "idVendor"), _read(device / "idProduct")
        state = usb_state(vendor, product) if vendor and product else None
        if state is None:
            continue
        bus, num = _read(device / "busnum"), _read(device / "devnum")
        node = (dev_root / "bus" / "usb" / f"{int(bus):03d}" / f"{int(num):03d}"
                if bus and num and bus.isdigit() and num.isdigit() else None)
        found.append(EdgeTpuDevice("usb", str(device), state,
                                   _accessible(node) if node else None))
    return found


def find_pci(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[EdgeTpuDevice]:
    """Coral M.2/PCIe cards: /dev/apex_N nodes, and cards the apex driver has not claimed."""
    found = [EdgeTpuDevice("pci", str(node), "PCIe, apex driver loaded", _accessible(node))
             for node in sorted(dev_root.glob("apex_*"))]
    cards = [d for d in sorted((sys_root / "bus" / "pci" / "devices").glob("*"))
             if (_read(d / "vendor"), _read(d / "device")) == PCI_ID]
    for card in cards[len(found):]:
        found.append(EdgeTpuDevice("pci", str(card), "PCIe card present but no /dev/apex_N: "
                                   "install gasket-dkms (the apex driver) and reboot"))
    return found


def find_edge_tpus(sys_root: Path = Path("/sys"),
                   dev_root: Path = Path("/dev")) -> list[EdgeTpuDevice]:
    return find_usb(sys_root, dev_root) + find_pci(sys_root, dev_root)


def libedgetpu_package(
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> tuple[str, str] | None:
    """(package, version) of the installed libedgetpu Debian package, or None."""
    try:
        result = run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n",
                      *LIBEDGETPU_PACKAGES], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no dpkg: not a Debian system
        return None
    installed = parse_dpkg_query(result.stdout)
    return installed[0] if installed else None


def probe_delegate(
    timeout: float = 30.0, device: str | None = None, *, python: str = sys.executable
) -> DelegateProbe:
    """Load the libedgetpu delegate in a child process and report what happened.

    ``python`` is the interpreter to run the child with (tests pass one that crashes).
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [python, "-m", "edgeknn.vision.edgetpu_info"] + ([device] if device else [])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return DelegateProbe("timeout", f"loading the delegate took more than {timeout:g} s")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    delegate = next((line for line in lines if "status" in line), None)
    pycoral = next((line["pycoral"] for line in lines if "pycoral" in line), None)
    devices = tuple(pycoral) if pycoral is not None else None
    if delegate is None:
        if result.returncode < 0:
            return DelegateProbe("crashed", f"the process loading the delegate died of signal "
                                 f"{-result.returncode} (a libedgetpu/interpreter mismatch?)")
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        return DelegateProbe("error", f"the delegate probe failed: {tail[0]}", devices)
    return DelegateProbe(delegate["status"], delegate["message"], devices)


def _probe_main(argv: list[str]) -> int:
    """Child side of probe_delegate: one JSON line for the delegate, one for pycoral."""
    from edgeknn.errors import DelegateMissing, EdgeTpuError, InterpreterMissing
    from edgeknn.vision.runtime import load_edgetpu_delegate

    device = argv[0] if argv else None
    try:
        load_edgetpu_delegate(device)
        status, message = "loaded", "the Edge TPU delegate loaded and opened a device"
    except InterpreterMissing as exc:
        status, message = "no-interpreter", str(exc)
    except DelegateMissing as exc:
        status, message = "missing", str(exc)
    except EdgeTpuError as exc:
        status, message = "no-device", f"{exc} (or it is in use by another process)"
    print(json.dumps({"status": status, "message": message}), flush=True)
    try:
        from pycoral.utils.edgetpu import list_edge_tpus  # optional; never required
    except ImportError:
        return 0
    try:
        tpus = [f"{t.get('type')}:{t.get('path')}" for t in list_edge_tpus()]
    except Exception as exc:  # a vendor error of any type; report it, do not fail the probe
        tpus = [f"error: {exc}"]
    print(json.dumps({"pycoral": tpus}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
