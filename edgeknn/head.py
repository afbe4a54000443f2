"""The few-shot head: logistic regression over transformed features, fitted from a store's rows (pure).

A :class:`Head` is a snapshot: it was fitted on the store as it was at
``version`` and with one feature transform.  The store uses it only while
both still hold; otherwise the class means answer until a refit lands
(see :mod:`edgeknn.service.refit`), so a taught example counts from the
very next frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgeknn import logreg
from edgeknn.features import FeatureTransform, unit_rows

# Teach-time and predict-time views (``classifier.views``).  "mirror" embeds each
# taught frame mirrored too (stored beside it, a row for the head) and classifies
# the mean of a frame's and its mirror's embeddings: two invokes per frame, about
# +0.5 points over "none" on the shared sets.  "crops" stores the mirror and the
# four corner crops (85 %) of each taught frame as rows for the head and
# classifies single frames: 5 extra invokes per taught frame only, made after the
# example is stored (service/viewmaker.py), about +0.7 points over "none" (+4.4
# over the class means, tests/test_fewshot_accuracy.py).  An invoke costs ~2-4 ms
# on an Edge TPU but ~100 ms on a Pi 4's CPU, so "auto" means "mirror" on the
# Edge TPU and "crops" on the CPU, where a second invoke per frame would halve the rate.
VIEWS = ("auto", "none", "mirror", "crops")
VIEW_COST = {"none": "1 invoke per frame",
             "mirror": "2 invokes per frame and per taught frame",
             "crops": "1 invoke per frame; 5 more per taught frame (~0.5 s on a Pi 4 CPU), after it is stored"}


def views_in_effect(setting: str, backend: str) -> str:
    """"mirror", "crops" or "none": what ``classifier.views`` means on this backend."""
    if setting == "auto":
        return "mirror" if backend == "edgetpu" else "crops"
    return setting


@dataclass(frozen=True)
class Head:
    model: logreg.LogReg
    transform: FeatureTransform
    prototypes: np.ndarray  # (C, D) unit mean feature of each class, in model.labels order
    version: int  # the store version it was fitted on
    rows: int
    seconds: float  # how long the fit took

    def logits(self, features: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """One logit per label of ``labels`` (-inf for a label the head does not know)."""
        return self._spread(self.model.scores(features), labels, -np.inf)

    def prototype_similarities(self, features: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """Cosine of transformed features to each class's mean feature (what ``unknown`` reads)."""
        return self._spread(self.prototypes @ features, labels, -1.0)

    def _spread(self, own: np.ndarray, labels: tuple[str, ...], missing: float) -> np.ndarray:
        out = np.full(len(labels), missing)
        position = {label: i for i, label in enumerate(labels)}
        for j, label in enumerate(self.model.labels):
            if label in position:
                out[position[label]] = own[j]
        return out


def fit_head(
    raw: np.ndarray,
    labels: list[str] | tuple[str, ...] | np.ndarray,
    transform: FeatureTransform,
    version: int,
    *,
    c: float = logreg.C_DEFAULT,
    warm: Head | None = None,
) -> Head:
    """Fit on raw embeddings (N, D) and their labels; ``warm`` starts from an earlier head."""
    started = time.perf_counter()
    start = warm.model if warm is not None and warm.transform == transform else None
    features = transform.apply(raw)
    model = logreg.fit(features, labels, c=c, warm=start)
    names = np.asarray(labels)
    prototypes = unit_rows(np.stack([features[names == label].mean(axis=0) for label in model.labels]))
    return Head(model, transform, prototypes, version, len(raw), time.perf_counter() - started)
