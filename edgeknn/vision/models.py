"""The model manifest, fetching models into the models directory, and checksums.

The manifest (``models/manifest.toml`` in the repository, ``edgeknn/manifest.toml``
in the wheel) names every model edgeknn knows: where to download it and its
sha256.  A model is found, in order, as a path the user gave, as a verified file
in the models directory, or by fetching it.

Fetching writes to a temporary file beside the target, fsyncs it, checks its
sha256 and only then renames it into place, so the models directory never holds
a partial or unverified file, even after a power cut or a wrong checksum.

The download source is the ``mirror`` argument (a directory, or an ``http(s)://``
or ``file://`` URL the file name is appended to; ``models.mirror`` of the config,
which ``$EDGEKNN_MODEL_MIRROR`` overrides), else the entry's canonical ``url``.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import logging
import os
import re
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, BinaryIO, Literal

from edgeknn import paths
from edgeknn.errors import ChecksumMismatch, ModelError, ModelNotFound
from edgeknn.features import RAW, FeatureTransform, decode_mean

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("embedder", "classifier", "detector", "labels")
DEFAULT_TIMEOUT = 30.0  # seconds without a byte from the server
CHUNK = 1 << 16

Progress = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total_or_None)`` while downloading."""

FileStatus = Literal["verified", "mismatch", "absent", "composite"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("file", "url", "sha256", "kind")
_OPTIONAL = ("edgetpu", "cpu_variant", "edgetpu_variant", "input", "embedding_tensor",
             "labels", "default", "feature_power", "feature_mean", "parts")


@dataclass(frozen=True)
class ModelInfo:
    """One manifest entry; see the header of models/manifest.toml for the keys."""

    name: str
    file: str
    url: str
    sha256: str
    kind: str
    edgetpu: bool = False
    cpu_variant: str | None = None
    edgetpu_variant: str | None = None
    input: tuple[int, int] | None = None  # (width, height)
    embedding_tensor: str | None = None
    labels: str | None = None
    default: bool = False
    features: FeatureTransform = RAW  # what the few-shot head sees (see features.py)
    parts: tuple[str, ...] = ()  # an embedder made of these entries, outputs concatenated


# --------------------------------------------------------------------------- manifest

def manifest_source() -> Traversable:
    """The packaged ``edgeknn/manifest.toml`` if installed from a wheel, else the repo's."""
    packaged = importlib.resources.files("edgeknn").joinpath("manifest.toml")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


def load_manifest(path: Path | None = None) -> dict[str, ModelInfo]:
    """Read and validate a manifest; every problem is a ModelError naming entry and key."""
    source: Traversable = manifest_source() if path is None else path
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"model manifest {source} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model manifest {source} is not valid TOML: {exc}") from None
    return parse_manifest(data, where=str(source))


def parse_manifest(data: dict[str, Any], where: str = "manifest") -> dict[str, ModelInfo]:
    """Validate a decoded manifest (pure: no I/O)."""
    extra = set(data) - {"models"}
    if extra:
        raise ModelError(f"{where}: unknown top-level key {sorted(extra)[0]!r}; only [models.*]")
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ModelError(f"{where}: no [models.<name>] tables")
    manifest = {name: _entry(name, table, where) for name, table in tables.items()}
    _check_references(manifest, where)
    return manifest


def _entry(name: str, table: Any, where: str) -> ModelInfo:
    def fail(key: str, expected: str, got: object) -> ModelError:
        return ModelError(f"{where}: models.{name}.{key}: expected {expected}, got {got!r}")

    if not isinstance(table, dict):
        raise ModelError(f"{where}: models.{name} must be a table")
    if "parts" in table:
        return _composite(name, table, where, fail)
    for key in table:
        if key not in _REQUIRED and key not in _OPTIONAL:
            raise fail(key, f"one of {', '.join(_REQUIRED + _OPTIONAL)}", key)
    for key in _REQUIRED:
        if key not in table:
            raise ModelError(f"{where}: models.{name}.{key} is missing")
    for key in ("file", "url", "sha256", "kind", "cpu_variant", "edgetpu_variant",
                "embedding_tensor", "labels"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise fail(key, "a non-empty string", table[key])
    for key in ("edgetpu", "default"):
        if key in table and not isinstance(table[key], bool):
            raise fail(key, "true or false", table[key])
    file = table["file"]
    if "/" in file or "\\" in file or file.startswith("."):
        raise fail("file", "a plain file name", file)
    if not table["url"].startswith(("https://", "http://")):
        raise fail("url", "an http(s):// URL", table["url"])
    if not _SHA256.fullmatch(table["sha256"]):
        raise fail("sha256", "64 lower-case hex digits", table["sha256"])
    if table["kind"] not in KINDS:
        raise fail("kind", " | ".join(KINDS), table["kind"])
    size = table.get("input")
    if size is not None:
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                           for v in size)):
            raise fail("input", "[width, height] of positive integers", size)
        size = (size[0], size[1])
    power = table.get("feature_power", 1.0)
    if isinstance(power, bool) or not isinstance(power, int | float) or not 0 < power <= 1:
        raise fail("feature_power", "a number in (0, 1]", power)
    mean = None
    if "feature_mean" in table:
        if not isinstance(table["feature_mean"], str):
            raise fail("feature_mean", "a base64 string (edgeknn models features)", table["feature_mean"])
        mean = decode_mean(table["feature_mean"], f"{where}: models.{name}.feature_mean")
    return ModelInfo(
        name=name, file=file, url=table["url"], sha256=table["sha256"], kind=table["kind"],
        edgetpu=table.get("edgetpu", False), cpu_variant=table.get("cpu_variant"),
        edgetpu_variant=table.get("edgetpu_variant"), input=size,
        embedding_tensor=table.get("embedding_tensor"), labels=table.get("labels"),
        default=table.get("default", False), features=FeatureTransform(float(power), mean),
    )


def _composite(name: str, table: dict, where: str, fail: Callable[[str, str, Any], ModelError]) -> ModelInfo:
    """An embedder made of other entries (``parts``): it has no file of its own."""
    allowed = {"parts", "kind", "default", "feature_power", "feature_mean"}
    for key in table:
        if key not in allowed:
            raise fail(key, f"one of {', '.join(sorted(allowed))} (an entry with parts has no file)", key)
    parts = table["parts"]
    if (not isinstance(parts, list) or len(parts) < 2
            or not all(isinstance(p, str) and p for p in parts)):
        raise fail("parts", "a list of two or more entry names", parts)
    if table.get("kind") != "embedder":
        raise fail("kind", "embedder (only embedders have parts)", table.get("kind"))
    plain = _entry(name, {"file": "x", "url": "https://x", "sha256": "0" * 64,
                          **{k: v for k, v in table.items() if k != "parts"}}, where)
    return ModelInfo(name=name, file="", url="", sha256="", kind="embedder",
                     default=plain.default, features=plain.features, parts=tuple(parts))


def _check_references(manifest: dict[str, ModelInfo], where: str) -> None:
    def ref(info: ModelInfo, key: str) -> ModelInfo:
        target = getattr(info, key)
        if target not in manifest:
            raise ModelError(f"{where}: models.{info.name}.{key}: {target!r} is not an entry "
                             f"(known: {', '.join(sorted(manifest))})")
        return manifest[target]

    defaults: dict[str, str] = {}
    for info in manifest.values():
        for part in info.parts:
            target = manifest.get(part)
            if target is None or target.edgetpu or target.parts or not target.embedding_tensor:
                raise ModelError(f"{where}: models.{info.name}.parts: {part!r} must be a CPU entry "
                                 "with an embedding_tensor (its Edge TPU variant is used when present)")
        if info.edgetpu and info.cpu_variant is None:
            raise ModelError(f"{where}: models.{info.name}.cpu_variant is missing: an Edge TPU "
                             "model needs a CPU variant to fall back to")
        if info.edgetpu and info.edgetpu_variant is not None:
            raise ModelError(f"{where}: models.{info.name}.edgetpu_variant: an Edge TPU model "
                             "cannot have an Edge TPU variant")
        if not info.edgetpu and info.cpu_variant is not None:
            raise ModelError(f"{where}: models.{info.name}.cpu_variant: only an Edge TPU model "
                             "(edgetpu = true) has a CPU variant")
        if info.cpu_variant is not None and ref(info, "cpu_variant").edgetpu:
            raise ModelError(f"{where}: models.{info.name}.cpu_variant: "
                             f"{info.cpu_variant!r} is itself an Edge TPU model")
        if info.edgetpu_variant is not None:
            other = ref(info, "edgetpu_variant")
            if not other.edgetpu or other.cpu_variant != info.name:
                raise ModelError(f"{where}: models.{info.name}.edgetpu_variant: "
                                 f"{other.name!r} must have edgetpu = true and "
                                 f"cpu_variant = {info.name!r}")
        if info.labels is not None and ref(info, "labels").kind != "labels":
            raise ModelError(f"{where}: models.{info.name}.labels: {info.labels!r} is not "
                             "a labels entry")
        if info.default:
            if info.kind in defaults:
                raise ModelError(f"{where}: models.{info.name}.default: {defaults[info.kind]!r} "
                                 f"is already the default {info.kind}")
            defaults[info.kind] = info.name


def default_model(kind: str, *, manifest: dict[str, ModelInfo] | None = None) -> ModelInfo:
    """The manifest entry marked ``default = true`` for this kind."""
    manifest = load_manifest() if manifest is None else manifest
    for info in manifest.values():
        if info.kind == kind and info.default:
            return info
    kinds = sorted({i.kind for i in manifest.values() if i.default})
    raise ModelNotFound(f"the manifest has no default {kind}; kinds with a default: "
                        f"{', '.join(kinds) or 'none'}")


def lookup(name: str, manifest: dict[str, ModelInfo] | None = None) -> ModelInfo:
    """The entry called ``name``, or ModelNotFound listing the known names."""
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        raise ModelNotFound(f"no model {name!r} in the manifest; known: "
                            f"{', '.join(sorted(manifest))} (or give a path to a .tflite file)")
    return manifest[name]


def resolve_variants(
    info: ModelInfo, manifest: dict[str, ModelInfo] | None = None
) -> tuple[ModelInfo, ModelInfo | None]:
    """Given either compilation of a network, return ``(cpu, edgetpu_or_None)``."""
    manifest = load_manifest() if manifest is None else manifest
    if info.edgetpu:
        assert info.cpu_variant is not None  # the manifest validation guarantees it
        return lookup(info.cpu_variant, manifest), info
    if info.edgetpu_variant is None:
        return info, None
    return info, lookup(info.edgetpu_variant, manifest)


# --------------------------------------------------------------------------- files

def verify(path: Path, sha256: str) -> bool:
    """True if ``path`` is a file whose sha256 is ``sha256``; False if it differs or is absent."""
    try:
        with Path(path).open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == sha256.lower()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    except OSError as exc:  # unreadable: saying "mismatch" would send the user the wrong way
        raise ModelError(f"cannot read {path} to check its sha256: {exc}") from None


def file_status(info: ModelInfo, models_dir: Path) -> FileStatus:
    """Whether the entry's file is in ``models_dir`` and matches its checksum."""
    if info.parts:
        return "composite"
    path = models_dir / info.file
    if not path.is_file():
        return "absent"
    return "verified" if verify(path, info.sha256) else "mismatch"


def looks_like_path(name_or_path: str) -> bool:
    """A model argument is a path if it has a separator, a model suffix, or names a file."""
    return ("/" in name_or_path or os.sep in name_or_path
            or name_or_path.endswith((".tflite", ".txt"))
            or Path(name_or_path).expanduser().is_file())


def ensure_model(
    name_or_path: str,
    models_dir: Path | None = None,
    *,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Return a local, verified file for a manifest name, or the path the user gave.

    A file already in the models directory is re-hashed (a few ms for these
    models); if it no longer matches, it is fetched again, replacing it.
    """
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model file {path} does not exist")
        return path
    info = lookup(name_or_path)
    models_dir = paths.default_models_dir() if models_dir is None else models_dir
    status = file_status(info, models_dir)
    if status == "verified":
        return models_dir / info.file
    if status == "mismatch":
        log.warning("%s in %s fails its sha256 check; fetching it again", info.file, models_dir)
    return fetch(info, models_dir, mirror=mirror, progress=progress)


def source_url(info: ModelInfo, mirror: str | None = None) -> str:
    """Where ``fetch`` reads from: a URL, or a local path for a directory mirror."""
    if not mirror:
        return info.url
    if mirror.startswith(("http://", "https://", "file://")):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(info.file)
    return str(Path(mirror).expanduser() / info.file)


def fetch(
    info: ModelInfo,
    models_dir: Path,
    *,
    mirror: str | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Download one entry into ``models_dir``; verify it; rename it into place atomically."""
    source = source_url(info, mirror)
    target = models_dir / info.file
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=f".{info.file}.", suffix=".part")
    except OSError as exc:
        raise ModelError(f"cannot write to models directory {models_dir}: {exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tmp.open("wb") as out:
            digest = _copy(source, out, timeout, progress)
            out.flush()
            os.fsync(out.fileno())
        if digest != info.sha256:
            raise ChecksumMismatch(
                f"{info.file} from {source}: expected sha256 {info.sha256}, got {digest}; "
                "the file was not kept (a wrong or changed upload, or a bad mirror)"
            )
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the service user must read it too
            os.replace(tmp, target)
        except OSError as exc:
            raise ModelError(f"cannot move the download into place as {target}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(models_dir)
    return target


def _copy(source: str, out: BinaryIO, timeout: float, progress: Progress | None) -> str:
    """Stream ``source`` into ``out``; return the sha256 hex digest of what was written."""
    digest = hashlib.sha256()
    try:
        with _open(source, timeout) as response:
            total = _length(response)
            done = 0
            while chunk := response.read(CHUNK):
                _write(out, chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        raise ModelError(f"cannot download {source}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ModelError(f"cannot download {source}: {exc.reason}") from None
    except TimeoutError:
        raise ModelError(f"cannot download {source}: no data for {timeout:g} s") from None
    except http.client.HTTPException as exc:  # e.g. IncompleteRead: the server hung up
        raise ModelError(f"cannot download {source}: {type(exc).__name__} {exc}") from None
    except FileNotFoundError:
        raise ModelError(f"cannot copy {source}: the mirror has no such file") from None
    except OSError as exc:  # connection reset, permission denied on a mirror file, ...
        raise ModelError(f"cannot read {source}: {exc}") from None
    return digest.hexdigest()


def _write(out: BinaryIO, chunk: bytes) -> None:
    try:
        out.write(chunk)
    except OSError as exc:  # a full SD card, most likely
        raise ModelError(f"cannot write {out.name}: {exc}") from None


def _open(source: str, timeout: float) -> BinaryIO:
    if "://" in source:
        request = urllib.request.Request(source, headers={"User-Agent": "edgeknn"})
        return urllib.request.urlopen(request, timeout=timeout)
    return open(source, "rb")


def _length(response: BinaryIO) -> int | None:
    headers = getattr(response, "headers", None)
    if headers is not None and headers.get("Content-Length", "").isdigit():
        return int(headers["Content-Length"])
    try:
        return os.fstat(response.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (ignored where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def select(
    manifest: dict[str, ModelInfo], names: Iterable[str] = (), kind: str | None = None,
    *, with_labels: bool = True,
) -> list[ModelInfo]:
    """The entries to fetch: the named ones (all if none) of ``kind``, plus the labels they use."""
    names = list(names)
    if kind is not None and kind not in KINDS:
        raise ModelError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    chosen = [lookup(n, manifest) for n in names] if names else list(manifest.values())
    if kind is not None:
        chosen = [i for i in chosen if i.kind == kind]
    # An entry with parts has no file: fetching it by name fetches its parts.
    chosen = [manifest[p] for i in chosen for p in i.parts if names] + [i for i in chosen if not i.parts]
    if with_labels:
        chosen += [manifest[i.labels] for i in chosen if i.labels is not None]
    unique: dict[str, ModelInfo] = {}
    for info in chosen:
        unique.setdefault(info.name, info)
    return list(unique.values())
