"""Image -> L2-normalised embedding, with any image-classifier model.

The embedding is read from a named tensor (``embedding_tensor``) or, by
default, the model's single output.  Input preprocessing honours the model's
quantization: MobileNets expect pixels normalised to [-1, 1]; a uint8 input
with scale 1/128 and zero point 128 takes raw pixels as they are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeknn.errors import ModelError
from edgeknn.features import RAW, FeatureTransform
from edgeknn.images import as_rgb, fit, load_image
from edgeknn.vision.runtime import OpenedModel, open_interpreter

# The normalisation MobileNet (and most Coral classifiers) were trained with.
INPUT_MEAN = 127.5
INPUT_STD = 127.5


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_of(model_sha256: str, tensor: str) -> str:
    """What travels with every stored embedding: which model and which tensor made it."""
    return f"{model_sha256[:16]}:{tensor}"


def quantize_input(image: np.ndarray, dtype: type, scale: float, zero_point: int) -> np.ndarray:
    """Map uint8 pixels to a classifier's input type, for inputs normalised to [-1, 1]
    as MobileNet classifiers are trained (pure).  Detectors have their own
    convention (detector.input_array): EfficientDet-Lite takes 0..255."""
    if dtype == np.float32:
        return ((image.astype(np.float32) - INPUT_MEAN) / INPUT_STD)[None]
    if not scale or (abs(scale * INPUT_STD - 1) < 1e-2 and abs(zero_point - INPUT_MEAN) <= 1):
        # (q - zp) * scale == (p - 127.5) / 127.5 for q == p, near enough: raw pixels.
        return image.astype(dtype, copy=False)[None]
    real = (image.astype(np.float32) - INPUT_MEAN) / INPUT_STD
    info = np.iinfo(dtype)
    q = np.clip(np.round(real / scale + zero_point), info.min, info.max)
    return q.astype(dtype)[None]


@dataclass(frozen=True)
class EmbedderInfo:
    tensor: str
    dim: int
    input_size: tuple[int, int]  # width, height
    backend: str
    fingerprint: str  # of the raw embeddings: what a store checks
    features: FeatureTransform = RAW  # applied before the few-shot head

    @property
    def head_fingerprint(self) -> str:
        """What a fitted head depends on: the raw embeddings and the feature transform."""
        return f"{self.fingerprint}+{self.features.id}"


class Embedder:
    """Runs one model; not thread-safe (one interpreter, one caller at a time: the
    service calls it only through its Engine, service/engine.py)."""

    def __init__(
        self,
        opened: OpenedModel,
        *,
        fingerprint_sha256: str,
        embedding_tensor: str | None = None,
        resize: str,
        features: FeatureTransform = RAW,
    ) -> None:
        self._interp = opened.interpreter
        self._resize = resize
        inp = self._interp.get_input_details()[0]
        _, h, w, _ = (int(x) for x in inp["shape"])
        self._input_index = inp["index"]
        self._input_dtype = inp["dtype"]
        self._input_q = inp["quantization"]
        out = self._find_tensor(opened, embedding_tensor)
        self._out_index = out["index"]
        self._out_dtype = out["dtype"]
        self._out_q = out["quantization"]
        dim = int(np.prod(out["shape"]))
        self.info = EmbedderInfo(
            tensor=out["name"],
            dim=dim,
            input_size=(w, h),
            backend=opened.backend,
            fingerprint=fingerprint_of(fingerprint_sha256, out["name"]),
            features=features,
        )

    def _find_tensor(self, opened: OpenedModel, name: str | None) -> dict:
        outputs = self._interp.get_output_details()
        if not name:
            if len(outputs) != 1:
                names = ", ".join(o["name"] for o in outputs)
                raise ModelError(
                    f"model {opened.path.name} has {len(outputs)} outputs ({names}); "
                    "name the embedding tensor (embedder.embedding_tensor)"
                )
            return outputs[0]
        for detail in outputs + self._interp.get_tensor_details():
            if detail["name"] == name:
                return detail
        raise ModelError(
            f"model {opened.path.name} has no tensor named {name!r}; "
            f"its outputs are: {', '.join(o['name'] for o in outputs)}"
        )

    @property
    def interpreter(self) -> Any:
        """The underlying interpreter (for benchmarks that time invoke alone)."""
        return self._interp

    @property
    def input_size(self) -> tuple[int, int]:
        return self.info.input_size

    @property
    def resize(self) -> str:
        """How frames fit the model input (a RESIZE_POLICIES value)."""
        return self._resize

    def embed(self, image: np.ndarray) -> np.ndarray:
        """An RGB uint8 image of any size -> float32 unit vector."""
        image = as_rgb(image)
        w, h = self.info.input_size
        fitted, _ = fit(image, w, h, self._resize)
        return self.embed_fitted(fitted)

    def embed_fitted(self, fitted: np.ndarray) -> np.ndarray:
        """Embed an image already at the model's input size."""
        scale, zp = self._input_q
        try:
            self._interp.set_tensor(self._input_index, quantize_input(fitted, self._input_dtype, scale, zp))
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out_index).reshape(-1)
        except (RuntimeError, ValueError) as exc:  # e.g. a USB Edge TPU unplugged mid-run
            raise ModelError(f"embedder ({self.info.backend}) failed to run: {exc}") from None
        scale, zp = self._out_q
        vec = (raw.astype(np.float32) - zp) * scale if scale else raw.astype(np.float32)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def embed_file(self, path: str | Path) -> np.ndarray:
        return self.embed(load_image(path))


def open_embedder(
    cpu_model: Path,
    *,
    edgetpu_model: Path | None = None,
    embedding_tensor: str | None = None,
    accelerator: str,
    device: str | None = None,
    threads: int | None = None,
    resize: str,
    features: FeatureTransform = RAW,
) -> Embedder:
    """Open an embedder.  Its fingerprint is the CPU model's hash, so a store taught
    on the Edge TPU stays usable on the CPU (the two are one network compiled twice)."""
    def open_(preserve: bool) -> OpenedModel:
        return open_interpreter(
            cpu_model, edgetpu_model=edgetpu_model, accelerator=accelerator,
            device=device, threads=threads, preserve_all_tensors=preserve,
        )

    opened = open_(False)
    outputs = {o["name"] for o in opened.interpreter.get_output_details()}
    if embedding_tensor and embedding_tensor not in outputs:
        # An intermediate tensor's buffer is reused by later ops unless kept.
        opened = open_(True)
    return Embedder(
        opened,
        fingerprint_sha256=file_sha256(cpu_model),
        embedding_tensor=embedding_tensor,
        resize=resize,
        features=features,
    )
