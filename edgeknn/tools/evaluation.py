"""Few-shot evaluation of the classifier methods on one embedded dataset (pure).

For each seed, ``shots`` examples per class are drawn as the taught examples
and every other image is a query.  All methods see the same split, and the
same float16 embeddings, similarity code and classify() the store uses.

``logreg`` is shown twice when mirrored embeddings are given: without views
(the CPU-only default) and with the mirror view (the Edge TPU default: each
taught image also stored mirrored, each query the mean of it and its mirror),
and a third time with the crop views when corner embeddings are given (the
CPU default: each taught image stored mirrored and as its four corner crops,
each query a single frame), exactly as the service does with ``classifier.views``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeknn.classify import Examples, classify
from edgeknn.errors import DatasetError
from edgeknn.features import RAW, FeatureTransform, unit_rows
from edgeknn.head import fit_head
from edgeknn.store.matrix import DTYPE
from edgeknn.store.search import similarities

# What `edgeknn eval` compares: (name shown, method, k or None for the user's k, views).
METHODS = (
    ("knn-3", "knn", 3, "none"),
    ("class-mean", "ncm", None, "none"),
    ("balanced", "balanced", None, "none"),
    ("logreg", "logreg", None, "none"),
    ("logreg+mirror", "logreg", None, "mirror"),
    ("logreg+crops", "logreg", None, "crops"),
)
BASELINE = "class-mean"


@dataclass(frozen=True)
class MethodResult:
    name: str
    accuracies: tuple[float, ...]  # overall accuracy, one per seed
    per_class: tuple[float, ...]  # accuracy per class, over all seeds
    confusion: np.ndarray  # (C, C) counts over all seeds: rows true, columns predicted
    refit_ms: float = 0.0  # mean time to fit the head (logreg only)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def spread(self) -> float:
        return float(np.std(self.accuracies))


def split(codes: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the taught examples (``shots`` per class) and of the queries."""
    rng = np.random.default_rng(seed)
    n_classes = int(codes.max()) + 1
    taught = []
    for c in range(n_classes):
        members = np.flatnonzero(codes == c)
        if len(members) <= shots:
            raise DatasetError(
                f"class {c} has {len(members)} images; --shots {shots} leaves none to test"
            )
        taught.append(rng.choice(members, shots, replace=False))
    support = np.sort(np.concatenate(taught))
    queries = np.setdiff1d(np.arange(len(codes)), support)
    return support, queries


def evaluate(
    embeddings: np.ndarray,
    codes: np.ndarray,
    labels: tuple[str, ...],
    *,
    shots: int,
    seeds: list[int],
    k: int,
    features: FeatureTransform = RAW,
    mirrored: np.ndarray | None = None,
    corners: np.ndarray | None = None,
    only: tuple[str, ...] = (),
) -> list[MethodResult]:
    """Accuracy of every method in :data:`METHODS` over the given seeds.

    ``mirrored[i]`` is the embedding of image i mirrored left-right; without
    it the ``logreg+mirror`` row is left out.  ``corners[i]`` (4 x D) holds the
    embeddings of image i's corner views (:func:`edgeknn.images.corner_views`);
    with them and ``mirrored``, ``logreg+crops`` fits the head on each taught
    image, its mirror and its four corners, and classifies single frames.
    ``only`` names the rows wanted (all if empty).
    """
    n_classes = len(labels)
    vectors = embeddings.astype(DTYPE)
    flipped = mirrored.astype(DTYPE) if mirrored is not None else None
    results = []
    for name, method, fixed_k, views in METHODS:
        if ((views != "none" and flipped is None) or (views == "crops" and corners is None)
                or (only and name not in only)):
            continue
        accs, fit_seconds = [], []
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        for seed in seeds:
            support, queries = split(codes, shots, seed)
            matrix = vectors[support]
            sums = np.zeros((n_classes, vectors.shape[1]), dtype=np.float64)
            np.add.at(sums, codes[support], matrix.astype(np.float64))
            examples = Examples(labels, codes[support].astype(np.int32), support.astype(np.int64))
            asked = vectors[queries].astype(np.float32)
            head = None
            if method == "logreg":
                rows, row_labels = matrix, [labels[c] for c in codes[support]]
                if views == "mirror" and flipped is not None:
                    rows = np.concatenate([matrix, flipped[support]])
                    row_labels = row_labels * 2
                    asked = unit_rows(asked + flipped[queries].astype(np.float32))
                if views == "crops" and flipped is not None and corners is not None:
                    extra = [flipped[support]] + [corners[support, j].astype(DTYPE) for j in range(corners.shape[1])]
                    rows = np.concatenate([matrix, *extra])
                    row_labels = row_labels * (1 + len(extra))
                head = fit_head(rows.astype(np.float32), row_labels, features, version=0)
                fit_seconds.append(head.seconds)
            correct = 0
            for q, query in zip(queries, asked, strict=True):
                pred = classify(
                    query, similarities(matrix, query), sums, examples,
                    k=fixed_k or k, method=method, threshold=0.0,  # the best label counts, known or not
                    head=head, features=features,
                )
                guess = labels.index(pred.label) if pred.label is not None else 0
                confusion[codes[q], guess] += 1
                correct += guess == codes[q]
            accs.append(correct / len(queries))
        per_class = tuple(
            float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else 0.0
            for c in range(n_classes)
        )
        refit_ms = float(np.mean(fit_seconds) * 1e3) if fit_seconds else 0.0
        results.append(MethodResult(name, tuple(accs), per_class, confusion, refit_ms))
    return results
