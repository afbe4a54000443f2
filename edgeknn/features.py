"""The feature transform between a raw embedding and the few-shot head (pure).

``x -> L2(L2(sign(x) |x|^power) - mean)``: the power transform evens out the
few large activations of a pooled ReLU layer, and subtracting a *generic*
mean (the mean transformed embedding of a few hundred photos unrelated to
anything a user teaches) moves the origin to "an ordinary photo", so cosines
and linear weights measure what is particular about a class.  The store keeps
the raw embeddings, so the transform is applied whenever features are needed
and a changed transform never mixes with an old one: the head is refitted
from the raw rows.

The transform belongs to the embedder: its power and mean are given in the
model manifest (``feature_power``, ``feature_mean``), computed by
``edgeknn models features`` from a stated image set.  Its :attr:`id` names
it in fingerprints, ``doctor`` and ``stats``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

import numpy as np

from edgeknn.errors import ModelError


def unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class FeatureTransform:
    power: float = 1.0
    mean: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        """``pow0.5-mean<8 hex of the mean's bytes>``; ``pow1`` is the raw embedding."""
        name = f"pow{self.power:g}"
        if self.mean is not None:
            name += "-mean" + hashlib.sha256(self.mean.astype("<f2").tobytes()).hexdigest()[:8]
        return name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureTransform) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def powered(self, raw: np.ndarray) -> np.ndarray:
        """The first half: signed power, then L2 (what the generic mean is a mean of)."""
        x = np.asarray(raw, dtype=np.float32)
        if self.power != 1.0:
            x = (np.sign(x) * np.abs(x) ** self.power).astype(np.float32)
        return unit_rows(x)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw embeddings (D,) or (N, D) -> float32 features of the same shape."""
        x = self.powered(raw)
        if self.mean is not None:
            if self.mean.shape[-1] != x.shape[-1]:
                raise ModelError(
                    f"feature transform {self.id} has a {self.mean.shape[-1]}-d mean; "
                    f"the embeddings have {x.shape[-1]} dimensions"
                )
            x = unit_rows(x - self.mean)
        return x.astype(np.float32, copy=False)


RAW = FeatureTransform()


def generic_mean(raw: np.ndarray, power: float) -> np.ndarray:
    """The mean of the powered embeddings of a generic image set, rounded to float16."""
    if len(raw) == 0:
        raise ModelError("a generic mean needs at least one image")
    mean = FeatureTransform(power).powered(raw).mean(axis=0)
    return mean.astype(np.float16).astype(np.float32)


def encode_mean(mean: np.ndarray) -> str:
    """The manifest's ``feature_mean``: base64 of little-endian float16."""
    return base64.b64encode(mean.astype("<f2").tobytes()).decode("ascii")


def decode_mean(text: str, where: str) -> np.ndarray:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ModelError(f"{where}: expected base64 of float16 values (edgeknn models features)") from None
    if not data or len(data) % 2:
        raise ModelError(f"{where}: {len(data)} bytes is not a whole number of float16 values")
    return np.frombuffer(data, dtype="<f2").astype(np.float32)
