"""Few-shot evaluation of the classifier methods on one embedded dataset (pure).

For each seed, ``shots`` examples per class are drawn as the taught examples
and every other image is a query.  All methods see the same split, and the
same float16 embeddings and similarity code the store uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeknn.classify import Examples, classify
from edgeknn.errors import DatasetError
from edgeknn.store.matrix import DTYPE
from edgeknn.store.search import similarities

# What `edgeknn eval` compares: (name shown, method, k or None for the user's k).
BASELINES = (("edgeknn", "balanced", None), ("knn-3", "knn", 3), ("class-mean", "ncm", None))


@dataclass(frozen=True)
class MethodResult:
    name: str
    accuracies: tuple[float, ...]  # overall accuracy, one per seed
    per_class: tuple[float, ...]  # accuracy per class, over all seeds
    confusion: np.ndarray  # (C, C) counts over all seeds: rows true, columns predicted

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
) -> list[MethodResult]:
    """Accuracy of edgeknn's method (with ``k``) and the two baselines over the given seeds."""
    n_classes = len(labels)
    vectors = embeddings.astype(DTYPE)
    results = []
    for name, method, fixed_k in BASELINES:
        accs = []
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        for seed in seeds:
            support, queries = split(codes, shots, seed)
            matrix = vectors[support]
            sums = np.zeros((n_classes, vectors.shape[1]), dtype=np.float64)
            np.add.at(sums, codes[support], matrix.astype(np.float64))
            examples = Examples(labels, codes[support].astype(np.int32), support.astype(np.int64))
            correct = 0
            for q in queries:
                query = vectors[q].astype(np.float32)
                pred = classify(
                    query, similarities(matrix, query), sums, examples,
                    k=fixed_k or k, method=method, threshold=0.0,  # the best label counts, known or not
                )
                guess = labels.index(pred.label) if pred.label is not None else 0
                confusion[codes[q], guess] += 1
                correct += guess == codes[q]
            accs.append(correct / len(queries))
        per_class = tuple(
            float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else 0.0
            for c in range(n_classes)
        )
        results.append(MethodResult(name, tuple(accs), per_class, confusion))
    return results
