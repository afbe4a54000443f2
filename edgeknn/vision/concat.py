"""An embedder made of two (or more) models whose embeddings are concatenated.

Each part is a whole :class:`Embedder` (its own interpreter, tensor, Edge TPU
or CPU); the result is ``L2([e1, e2, ...])`` of the parts' unit vectors, so
each part weighs the same.  The fingerprint names every part, so a store taught
with the pair refuses a single model and the other way round.

The parts run one after the other: on a Pi 4's CPU the pair costs the sum of
both invokes (~100 ms + ~120 ms); on an Edge TPU, co-compiling the two models
(docs/two-model-embedder.md) lets them share the TPU's parameter cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeknn.errors import ModelError
from edgeknn.features import RAW, FeatureTransform
from edgeknn.images import as_rgb
from edgeknn.vision.embedder import Embedder, EmbedderInfo


class ConcatEmbedder(Embedder):
    """Quacks like an Embedder; does not call its constructor (there is no single model)."""

    def __init__(self, parts: list[Embedder], *, features: FeatureTransform = RAW,
                 resize: str = "center-crop") -> None:
        if len(parts) < 2:
            raise ModelError("a concatenated embedder needs at least two models")
        sizes = {p.input_size for p in parts}
        self._parts = parts
        self._resize = resize
        backends = {p.info.backend for p in parts}
        self.info = EmbedderInfo(
            tensor="+".join(p.info.tensor for p in parts),
            dim=sum(p.info.dim for p in parts),
            input_size=parts[0].input_size if len(sizes) == 1 else max(sizes),
            backend=backends.pop() if len(backends) == 1 else "+".join(p.info.backend for p in parts),
            fingerprint="concat(" + ",".join(p.info.fingerprint for p in parts) + ")",
            features=features,
        )

    @property
    def parts(self) -> list[Embedder]:
        return list(self._parts)

    @property
    def interpreter(self) -> Any:
        return self._parts[0].interpreter

    def embed(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb(image)
        return self._join([part.embed(image) for part in self._parts])

    def embed_fitted(self, fitted: np.ndarray) -> np.ndarray:
        vectors = []
        for part in self._parts:
            w, h = part.input_size
            if fitted.shape[1] != w or fitted.shape[0] != h:
                vectors.append(part.embed(fitted))
            else:
                vectors.append(part.embed_fitted(fitted))
        return self._join(vectors)

    @staticmethod
    def _join(vectors: list[np.ndarray]) -> np.ndarray:
        joined = np.concatenate(vectors)
        norm = float(np.linalg.norm(joined))
        return joined / norm if norm > 0 else joined


