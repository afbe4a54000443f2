"""Open the embedder and the detector by manifest name (fetching on first use) or path.

The command line and the daemon both build their models here, so a name in
the config and on the command line mean the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from edgeknn.features import RAW
from edgeknn.vision import models
from edgeknn.vision.embedder import Embedder, open_embedder

if TYPE_CHECKING:
    from edgeknn.config import DetectorConfig, EmbedderConfig, ModelsConfig
    from edgeknn.vision.detector import Detector, DetectorOptions


def _variants(
    name: str, edgetpu_model: str | None, accelerator: str, models_dir: Path | None, mirror: str | None
) -> tuple[Path, Path | None, models.ModelInfo | None]:
    """The CPU file, the Edge TPU file (only if it may be used) and the manifest entry."""
    manifest = models.load_manifest()
    if name in manifest and not models.looks_like_path(name):
        cpu, tpu = models.resolve_variants(manifest[name])
        cpu_path = models.ensure_model(cpu.name, models_dir, mirror=mirror)
        tpu_name = edgetpu_model or (tpu.name if tpu else None)
        info = cpu
    else:
        cpu_path = models.ensure_model(name, models_dir, mirror=mirror)
        tpu_name, info = edgetpu_model, None
    tpu_path = None
    if tpu_name and accelerator != "cpu":
        tpu_path = models.ensure_model(tpu_name, models_dir, mirror=mirror)
    return cpu_path, tpu_path, info


def build_embedder(
    model: str | None = None,
    *,
    edgetpu_model: str | None = None,
    embedding_tensor: str | None = None,
    accelerator: str = "auto",
    device: str | None = None,
    threads: int = 0,
    resize: str = "center-crop",
    models_dir: Path | None = None,
    mirror: str | None = None,
) -> Embedder:
    name = model or models.default_model("embedder").name
    manifest = models.load_manifest()
    if name in manifest and manifest[name].parts and not models.looks_like_path(name):
        from edgeknn.vision.concat import ConcatEmbedder

        parts = [build_embedder(part, accelerator=accelerator, device=device, threads=threads,
                                resize=resize, models_dir=models_dir, mirror=mirror)
                 for part in manifest[name].parts]
        return ConcatEmbedder(parts, features=manifest[name].features, resize=resize)
    cpu_path, tpu_path, info = _variants(name, edgetpu_model, accelerator, models_dir, mirror)
    tensor = embedding_tensor or (info.embedding_tensor if info else None)
    return open_embedder(
        cpu_path, edgetpu_model=tpu_path, embedding_tensor=tensor, accelerator=accelerator,
        device=device or None, threads=threads or None, resize=resize,
        features=info.features if info and tensor == info.embedding_tensor else RAW,
    )


def build_detector(
    model: str | None = None,
    *,
    labels: str | None = None,
    edgetpu_model: str | None = None,
    accelerator: str = "auto",
    device: str | None = None,
    threads: int = 0,
    models_dir: Path | None = None,
    mirror: str | None = None,
    **options: Unpack[DetectorOptions],
) -> Detector:
    """A detector by name or path, with its label file (from the manifest unless given);
    ``options`` (threshold, max_detections, allow, resize) go to it."""
    from edgeknn.vision.detector import open_detector

    name = model or models.default_model("detector").name
    cpu_path, tpu_path, info = _variants(name, edgetpu_model, accelerator, models_dir, mirror)
    label_name = labels or (info.labels if info else None)
    if not label_name:
        from edgeknn.errors import DetectorError

        raise DetectorError(f"detector {name}: no label file given and none in the manifest")
    label_path = models.ensure_model(label_name, models_dir, mirror=mirror)
    return open_detector(
        cpu_path, label_path, edgetpu_model=tpu_path, accelerator=accelerator,
        device=device or None, threads=threads or None, **options,
    )


def embedder_from_config(config: EmbedderConfig, models_config: ModelsConfig) -> Embedder:
    """The embedder an ``[embedder]`` section describes, its files kept as ``[models]`` says.

    The daemon and every command build their embedder here, so a config key and
    the flag that overrides it mean the same thing; "" in the config is "none".
    """
    return build_embedder(
        config.model, edgetpu_model=config.edgetpu_model or None,
        embedding_tensor=config.embedding_tensor or None, accelerator=config.accelerator,
        device=config.device, threads=config.threads, resize=config.resize,
        models_dir=models_config.dir, mirror=models_config.mirror or None,
    )


def detector_from_config(config: DetectorConfig, models_config: ModelsConfig) -> Detector:
    """The detector a ``[detector]`` section describes, as above."""
    return build_detector(
        config.model, labels=config.labels or None, edgetpu_model=config.edgetpu_model or None,
        accelerator=config.accelerator, device=config.device, threads=config.threads,
        models_dir=models_config.dir, mirror=models_config.mirror or None,
        threshold=config.threshold, max_detections=config.max_detections,
        allow=frozenset(config.allow) or None, resize=config.resize,
    )
