"""Open the embedder and the detector by manifest name (fetching on first use) or path.

The command line and the daemon both build their models here, so a name in
the config and on the command line mean the same thing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgeknn.features import RAW
from edgeknn.vision import models
from edgeknn.vision.embedder import Embedder, open_embedder

if TYPE_CHECKING:
    from edgeknn.config import DetectorConfig, EmbedderConfig, ModelsConfig
    from edgeknn.vision.detector import Detector


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


def embedder_from_config(config: EmbedderConfig, models_config: ModelsConfig) -> Embedder:
    """The embedder an ``[embedder]`` section describes, its files kept as ``[models]`` says.

    The daemon and every command build their embedder here, so a config key and
    the flag that overrides it mean the same thing; "" in the config is "none".
    Code without a config file passes a section built from the schema's
    defaults (``EmbedderConfig(threads=1)``), so there is one set of them.
    """
    manifest = models.load_manifest()
    entry = manifest.get(config.model)
    if entry is not None and entry.parts and not models.looks_like_path(config.model):
        from edgeknn.vision.concat import ConcatEmbedder

        parts = [embedder_from_config(replace(config, model=part, edgetpu_model="", embedding_tensor=""),
                                      models_config)
                 for part in entry.parts]
        return ConcatEmbedder(parts, features=entry.features, resize=config.resize)
    mirror = models_config.mirror or None
    cpu_path, tpu_path, info = _variants(config.model, config.edgetpu_model or None, config.accelerator,
                                         models_config.dir, mirror)
    tensor = config.embedding_tensor or (info.embedding_tensor if info else None)
    return open_embedder(
        cpu_path, edgetpu_model=tpu_path, embedding_tensor=tensor, accelerator=config.accelerator,
        device=config.device or None, threads=config.threads or None, resize=config.resize,
        features=info.features if info and tensor == info.embedding_tensor else RAW,
    )


def detector_from_config(config: DetectorConfig, models_config: ModelsConfig) -> Detector:
    """The detector a ``[detector]`` section describes, as above, with its label file (from the
    manifest unless ``labels`` names one)."""
    from edgeknn.vision.detector import open_detector

    mirror = models_config.mirror or None
    cpu_path, tpu_path, info = _variants(config.model, config.edgetpu_model or None, config.accelerator,
                                         models_config.dir, mirror)
    label_name = config.labels or (info.labels if info else None)
    if not label_name:
        from edgeknn.errors import DetectorError

        raise DetectorError(f"detector {config.model}: no label file given and none in the manifest")
    label_path = models.ensure_model(label_name, models_config.dir, mirror=mirror)
    return open_detector(cpu_path, label_path, config, edgetpu_model=tpu_path)
