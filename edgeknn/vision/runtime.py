"""Open a TFLite model: LiteRT (or tflite-runtime), on the Edge TPU or the CPU.

This is the one place that imports the interpreter package and loads the
``libedgetpu`` delegate.  Everything above it sees an :class:`OpenedModel`:
the interpreter, which backend it runs on, and which file was opened.

Accelerator modes:

``cpu``      never touch the Edge TPU; open the CPU model.
``edgetpu``  load the delegate or fail with a clear error.
``auto``     load the delegate if it loads (a TPU is present), else the CPU.

The ``_edgetpu`` model variant is chosen only when the delegate loaded: an
Edge TPU-compiled model cannot run on the CPU alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeknn.errors import (
    DelegateMissing,
    EdgeTpuError,
    EdgeTpuModelOnCpu,
    InterpreterMissing,
    ModelError,
    ModelNotFound,
    NotATFLiteModel,
)

Accelerator = Literal["auto", "cpu", "edgetpu"]
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "edgetpu")

EDGETPU_LIBRARY = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}.get(platform.system(), "libedgetpu.so.1")


@dataclass(frozen=True)
class InterpreterPackage:
    """Which interpreter package is installed, and its version."""

    name: str  # "ai-edge-litert" or "tflite-runtime"
    version: str
    module: Any  # the module that has Interpreter and load_delegate


@dataclass(frozen=True)
class OpenedModel:
    interpreter: Any
    backend: Literal["edgetpu", "cpu"]
    path: Path
    device: str | None = None


INTERPRETER_ENV = "EDGEKNN_INTERPRETER"
INTERPRETERS = ("ai-edge-litert", "tflite-runtime")


def _import(name: str) -> InterpreterPackage | None:
    try:
        if name == "ai-edge-litert":
            import ai_edge_litert as top
            from ai_edge_litert import interpreter as mod
        else:
            import tflite_runtime as top  # type: ignore[no-redef]
            from tflite_runtime import interpreter as mod  # type: ignore[no-redef]
    except ImportError:
        return None
    return InterpreterPackage(name, getattr(top, "__version__", "unknown"), mod)


def interpreter_package() -> InterpreterPackage:
    """ai-edge-litert, else tflite-runtime; $EDGEKNN_INTERPRETER picks one explicitly
    (the Edge TPU delegate must match the interpreter's TensorFlow version, see
    docs/edgetpu.md, and both packages may be installed)."""
    wanted = os.environ.get(INTERPRETER_ENV, "")
    if wanted and wanted not in INTERPRETERS:
        raise InterpreterMissing(f"${INTERPRETER_ENV}={wanted!r} is not one of {', '.join(INTERPRETERS)}")
    for name in (wanted,) if wanted else INTERPRETERS:
        found = _import(name)
        if found is not None:
            return found
    if wanted:
        raise InterpreterMissing(f"${INTERPRETER_ENV} asks for {wanted}, which is not installed")
    raise InterpreterMissing(
        "no TFLite interpreter installed: pip install ai-edge-litert "
        "(or tflite-runtime where no ai-edge-litert wheel exists)"
    )


def validate_device(device: str | None) -> str | None:
    """Check an Edge TPU device name: ``usb``, ``usb:N``, ``pci``, ``pci:N`` or ``:N``."""
    if device is None or device == "":
        return None
    kind, _, index = device.partition(":")
    if kind not in ("usb", "pci", "") or (index and not index.isdigit()) or device == ":":
        raise EdgeTpuError(
            f"Edge TPU device {device!r} is not valid: use usb, usb:0, pci, pci:0 or :0"
        )
    return device


def load_edgetpu_delegate(device: str | None = None, library: str = EDGETPU_LIBRARY) -> Any:
    """Load the libedgetpu delegate, or raise :class:`DelegateMissing`/:class:`EdgeTpuError`."""
    device = validate_device(device)
    mod = interpreter_package().module
    options = {"device": device} if device else {}
    try:
        # dlopen it ourselves first: LiteRT's load_delegate leaves a half-built
        # Delegate behind on this error, whose __del__ prints a traceback.
        ctypes.CDLL(library)
        return mod.load_delegate(library, options)
    except OSError as exc:  # dlopen failed: the library is not installed
        raise DelegateMissing(
            f"Edge TPU delegate {library} could not be loaded ({exc}); install a libedgetpu that "
            "matches the interpreter (docs/edgetpu.md), or set accelerator = \"cpu\""
        ) from None
    except ValueError as exc:  # library loaded but no device answered
        where = f" at {device}" if device else ""
        raise EdgeTpuError(
            f"no Edge TPU found{where}: {exc}; plug in the Coral or set accelerator = \"cpu\""
        ) from None


def check_tflite_file(path: Path) -> None:
    """Fail early, with the file name, when a path is missing or not a TFLite flatbuffer."""
    if not path.is_file():
        raise ModelNotFound(f"model file {path} does not exist; try: edgeknn models fetch")
    with path.open("rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise NotATFLiteModel(f"model file {path} is not a TFLite model (no TFL3 identifier)")


def is_edgetpu_model(path: Path) -> bool:
    """True if the file was compiled for the Edge TPU (it holds the edgetpu custom op)."""
    with path.open("rb") as f:
        return b"edgetpu-custom-op" in f.read()


def open_interpreter(
    cpu_model: Path,
    *,
    edgetpu_model: Path | None = None,
    accelerator: str,
    device: str | None = None,
    threads: int | None = None,
    preserve_all_tensors: bool = False,
    delegate_loader: Any = load_edgetpu_delegate,
) -> OpenedModel:
    """Open a model on the best backend allowed by ``accelerator``.

    ``cpu_model`` runs on the CPU; ``edgetpu_model`` is its Edge TPU
    compilation (optional).  ``threads`` defaults to every core.
    ``delegate_loader`` is injectable so tests can exercise the TPU paths.
    """
    mod = interpreter_package().module
    delegate = None
    if accelerator != "cpu" and edgetpu_model is not None:
        try:
            delegate = delegate_loader(device)
        except EdgeTpuError as exc:
            if accelerator == "edgetpu":
                raise
            # "auto" runs on the CPU, and says why: a Coral that is plugged in
            # but unusable (no access to /dev/apex_0, a mismatched libedgetpu)
            # would otherwise look like no Coral at all.
            (log.info if isinstance(exc, DelegateMissing) else log.warning)(
                "Edge TPU not used, running %s on the CPU: %s", cpu_model.name, exc)
    elif accelerator == "edgetpu":
        raise EdgeTpuError(
            f"accelerator = \"edgetpu\" but model {cpu_model.name} has no Edge TPU variant"
        )
    if delegate is not None and edgetpu_model is not None:
        check_tflite_file(edgetpu_model)
        try:
            interp = _make(mod, edgetpu_model, [delegate], None, preserve_all_tensors)
        except ModelError as exc:
            # The delegate loaded but cannot run this model (compiled for a newer
            # runtime, say): "auto" takes the CPU variant rather than failing.
            if accelerator == "edgetpu":
                raise
            log.warning("Edge TPU not used, running %s on the CPU: the delegate loaded but %s",
                        cpu_model.name, exc)
        else:
            return OpenedModel(interp, "edgetpu", edgetpu_model, device)
    check_tflite_file(cpu_model)
    if is_edgetpu_model(cpu_model):
        raise EdgeTpuModelOnCpu(
            f"model {cpu_model} is compiled for the Edge TPU (unresolved custom op "
            "edgetpu-custom-op without the delegate); use its CPU variant or attach a Coral"
        )
    n = threads if threads and threads > 0 else (os.cpu_count() or 1)
    interp = _make(mod, cpu_model, None, n, preserve_all_tensors)
    return OpenedModel(interp, "cpu", cpu_model, None)


def _make(mod: Any, path: Path, delegates: list | None, threads: int | None, preserve: bool) -> Any:
    kwargs: dict[str, Any] = {"model_path": str(path)}
    if delegates:
        kwargs["experimental_delegates"] = delegates
    if threads:
        kwargs["num_threads"] = threads
    if preserve:
        kwargs["experimental_preserve_all_tensors"] = True
    try:
        with warnings.catch_warnings(), native_log_to_logging():
            # LiteRT warns that preserving tensors is "for debugging"; we need it
            # to read a named intermediate tensor (an embedding layer) reliably.
            warnings.simplefilter("ignore")
            interp = mod.Interpreter(**kwargs)
            interp.allocate_tensors()
    except ValueError as exc:
        raise NotATFLiteModel(f"model file {path} could not be read: {exc}") from None
    except RuntimeError as exc:
        if "edgetpu-custom-op" in str(exc):
            raise EdgeTpuModelOnCpu(
                f"model {path} needs the Edge TPU (unresolved custom op edgetpu-custom-op)"
            ) from None
        raise ModelError(f"model {path} could not be prepared: {exc}") from None
    return interp


log = logging.getLogger(__name__)


@contextmanager
def native_log_to_logging() -> Iterator[None]:
    """Route what the C++ runtime prints on stderr ("INFO: Created TensorFlow Lite
    XNNPACK delegate", op errors) into Python logging, so the command line and
    the journal get one-line, levelled messages instead of raw native output."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (pytest capture, embedded)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip():
                    level = logging.DEBUG if line.startswith("INFO:") else logging.WARNING
                    log.log(level, "litert: %s", line.strip())
