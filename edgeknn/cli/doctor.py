"""``edgeknn doctor``: can this machine run edgeknn, and on what?

Exit status 0 when edgeknn is usable (the CPU alone is usable), 1 when
something is broken: no interpreter, a model file that fails its checksum, a
delegate that crashes, or an Edge TPU paired with a libedgetpu known to crash
with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from edgeknn.cli.flags import MODELS_DIR, add_flags, load_config
from edgeknn.config import ClassifierConfig
from edgeknn.errors import InterpreterMissing, ModelError
from edgeknn.head import VIEW_COST, views_in_effect
from edgeknn.vision import edgetpu_info, models, runtime
from edgeknn.vision.edgetpu_info import DelegateProbe, EdgeTpuDevice

EPILOG = """examples:
  edgeknn doctor                      # human-readable report
  edgeknn doctor --json | jq .usable  # for scripts and support requests
  edgeknn doctor --models-dir /var/lib/edgeknn/models

exit status: 0 usable (the CPU alone counts), 1 something is broken.
See docs/edgetpu.md for installing libedgetpu.
"""

Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str


@dataclass(frozen=True)
class ModelCheck:
    name: str
    file: str
    status: str  # verified | mismatch | absent


@dataclass(frozen=True)
class Report:
    interpreter: dict[str, str] | None
    devices: tuple[EdgeTpuDevice, ...]
    libedgetpu: dict[str, str] | None
    delegate: DelegateProbe
    pairing: dict[str, object] | None
    models_dir: str
    models: tuple[ModelCheck, ...]
    findings: tuple[Finding, ...] = field(default=())
    classifier: dict[str, str] = field(default_factory=dict)  # what the config puts in effect here

    @property
    def is_usable(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    @property
    def backend(self) -> str:
        return "edgetpu" if self.delegate.is_loaded else "cpu"

    def to_json(self) -> dict:
        data = asdict(self)
        data["usable"] = self.is_usable
        data["backend"] = self.backend if self.is_usable else None
        return data


def collect(
    models_dir: Path,
    *,
    sys_root: Path = Path("/sys"),
    dev_root: Path = Path("/dev"),
    probe: Callable[[], DelegateProbe] = edgetpu_info.probe_delegate,
    package: Callable[[], tuple[str, str] | None] = edgetpu_info.libedgetpu_package,
    manifest: dict[str, models.ModelInfo] | None = None,
    classifier: ClassifierConfig | None = None,
) -> Report:
    """Look at everything, in the order a user would debug it; judge at the end."""
    findings: list[Finding] = []
    try:
        pkg = runtime.interpreter_package()
        interpreter: dict[str, str] | None = {"name": pkg.name, "version": pkg.version}
    except InterpreterMissing as exc:
        interpreter = None
        findings.append(Finding("error", str(exc)))
    devices = tuple(edgetpu_info.find_edge_tpus(sys_root, dev_root))
    installed = package()
    libedgetpu = {"package": installed[0], "version": installed[1]} if installed else None
    delegate = probe()
    pairing = None
    if interpreter is not None:
        ok, why = edgetpu_info.delegate_compat(
            installed[1] if installed else None, interpreter["version"], interpreter["name"])
        pairing = {"ok": ok, "message": why}
    findings += _judge_edgetpu(devices, libedgetpu, delegate, pairing)
    checks: list[ModelCheck] = []
    try:
        manifest = models.load_manifest() if manifest is None else manifest
    except ModelError as exc:
        findings.append(Finding("error", str(exc)))
        manifest = {}
    for info in manifest.values():
        status = models.file_status(info, models_dir)
        checks.append(ModelCheck(info.name, info.file, status))
        if status == "mismatch":
            findings.append(Finding("error", f"{models_dir / info.file} fails its sha256 check: "
                                    f"delete it and run: edgeknn models fetch {info.name}"))
    for kind in ("embedder", "detector"):
        default = next((i for i in manifest.values() if i.kind == kind and i.default), None)
        if default is not None and not (models_dir / default.file).is_file():
            findings.append(Finding("info", f"the default {kind} {default.name} is not fetched "
                                    "yet; it is downloaded on first use, or now with: "
                                    "edgeknn models fetch"))
    return Report(interpreter, devices, libedgetpu, delegate, pairing, str(models_dir),
                  tuple(checks), tuple(findings),
                  _classifier(manifest, classifier or ClassifierConfig(), delegate.is_loaded))


def _classifier(manifest: dict[str, models.ModelInfo], config: ClassifierConfig,
                on_edgetpu: bool) -> dict[str, str]:
    """The configured classifier, the default embedder's feature transform and the views
    in effect on this machine, with their cost."""
    embedder = next((i for i in manifest.values() if i.kind == "embedder" and i.default), None)
    views = views_in_effect(config.views, "edgetpu" if on_edgetpu else "cpu")
    return {"method": config.method, "features": embedder.features.id if embedder else "pow1",
            "views_setting": config.views, "views": views, "views_cost": VIEW_COST[views]}


def _judge_edgetpu(
    devices: tuple[EdgeTpuDevice, ...],
    libedgetpu: dict[str, str] | None,
    delegate: DelegateProbe,
    pairing: dict[str, object] | None,
) -> list[Finding]:
    findings = []
    tpu_wanted = bool(devices) or delegate.is_loaded
    if delegate.status in ("crashed", "timeout"):
        findings.append(Finding("error", f"Edge TPU delegate: {delegate.message}; with "
                                "accelerator = \"auto\" the daemon would crash the same way"))
    elif delegate.status == "error":
        findings.append(Finding("warning", delegate.message))
    if pairing is not None and not pairing["ok"]:
        # A bad pairing only bites when the delegate is used, i.e. when a TPU is there.
        findings.append(Finding("error" if tpu_wanted else "warning", str(pairing["message"])))
    if devices and delegate.status == "missing":
        findings.append(Finding("warning", "an Edge TPU is attached but libedgetpu is not "
                                f"installed; running on the CPU (see {edgetpu_info.DOCS})"))
    for device in devices:
        if device.is_accessible is False:
            findings.append(Finding("warning", f"{device.path}: this user cannot open the "
                                    "device; add it to the plugdev group (USB) or apex group "
                                    f"(PCIe) and log in again (see {edgetpu_info.DOCS})"))
        if device.kind == "pci" and "no /dev/apex" in device.state:
            findings.append(Finding("warning", f"{device.path}: {device.state}"))
    if libedgetpu is not None and not devices and delegate.status == "no-device":
        findings.append(Finding("info", "libedgetpu is installed but no Edge TPU is attached"))
    return findings


def render(report: Report) -> str:
    lines = ["edgeknn doctor"]
    interp = report.interpreter
    lines.append(f"  interpreter  {interp['name']} {interp['version']}" if interp
                 else "  interpreter  none installed")
    if report.devices:
        for device in report.devices:
            access = {True: "", False: " (no permission)", None: ""}[device.is_accessible]
            lines.append(f"  Edge TPU     {device.path}: {device.state}{access}")
    else:
        lines.append("  Edge TPU     none found (USB 1a6e:089a / 18d1:9302, PCIe /dev/apex_*)")
    if report.delegate.pycoral_devices is not None:
        lines.append(f"  pycoral      {', '.join(report.delegate.pycoral_devices) or 'no TPUs'}")
    lib = report.libedgetpu
    lines.append(f"  libedgetpu   {lib['package']} {lib['version']}" if lib
                 else "  libedgetpu   no Debian package installed")
    lines.append(f"  delegate     {report.delegate.status}: {report.delegate.message}")
    if report.pairing is not None:
        lines.append(f"  pairing      {'ok' if report.pairing['ok'] else 'MISMATCH'}: "
                     f"{report.pairing['message']}")
    lines.append(f"  models       {report.models_dir}")
    width = max((len(m.name) for m in report.models), default=0)
    for check in report.models:
        lines.append(f"    {check.name:<{width}}  {check.status}")
    c = report.classifier
    if c:
        lines.append(f"  classifier   {c['method']}, features {c['features']}; views = {c['views_setting']} "
                     f"means {c['views']} here ({c['views_cost']})")
    for finding in report.findings:
        lines.append(f"{finding.level.upper()}: {finding.message}")
    verdict = (f"usable on the {'Edge TPU' if report.backend == 'edgetpu' else 'CPU'}"
               if report.is_usable else "BROKEN: see the errors above")
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    report = collect(config.models.dir, sys_root=Path(args.sys_root), dev_root=Path(args.dev_root),
                     classifier=config.classifier)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0 if report.is_usable else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's parser(s) to the edgeknn command line."""
    parser = sub.add_parser(
        "doctor", help="check the interpreter, Edge TPU, libedgetpu and models",
        description="Report what edgeknn can run on here: the interpreter package, Edge TPUs\n"
        "attached, whether the libedgetpu delegate loads and matches the interpreter, and\n"
        "whether the fetched models pass their checksums.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_flags(parser, MODELS_DIR)
    # Roots of the device trees: for tests and containers with /sys or /dev mounted elsewhere.
    parser.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    parser.add_argument("--dev-root", default="/dev", help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
