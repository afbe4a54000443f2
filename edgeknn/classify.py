"""KNN voting, the few-shot head, the unknown threshold and smoothing: pure functions over numpy.

Four methods:

``logreg``    (default) multinomial logistic regression over the embedder's
              transformed features (see features.py and head.py), refitted off
              the frame path after every change; until a refit lands the class
              means answer, so a taught example counts from the next frame.  On
              the shared few-shot sets it beats the class mean by about 4 points
              at 3, 5 and 7 shots (``edgeknn eval --shots 3 5 7``).

The other three work on cosine similarities of the raw unit vectors:

``knn``       the TF.js knn-classifier: the k nearest examples vote; a class's
              confidence is its share of the k votes.
``ncm``       nearest class mean (the idea behind Coral's weight imprinting):
              cosine to each class's normalised mean embedding.
``balanced``  each class is scored by the mean similarity of its own
              k nearest examples (fewer if it has fewer), averaged with the
              class-mean cosine, so a class with few examples is not outvoted
              merely for being small: with k = 3 and two examples of "mug"
              against fifty of "background", plain KNN lets "background" win
              on count alone.  Over 10 seeds it is no better than the class
              mean on average (``edgeknn eval`` prints all four).

For ``ncm`` and ``balanced`` the per-class shares are a softmax of the class
scores at temperature :data:`TEMPERATURE`, so they sum to 1 like vote shares
and a clear winner gets a confidence near 1; for ``logreg`` they are the
model's own probabilities.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from edgeknn.features import RAW, FeatureTransform
from edgeknn.head import Head
from edgeknn.results import Neighbor, Prediction

METHODS = ("logreg", "balanced", "knn", "ncm")
TEMPERATURE = 0.05
NEIGHBORS_REPORTED = 5


@dataclass(frozen=True)
class Examples:
    """What the classifier needs of a store: similarities and who they belong to.

    ``codes[i]`` is the class index of row i in ``labels``; ``ids[i]`` its example id.
    """

    labels: tuple[str, ...]
    codes: np.ndarray  # int32 (N,)
    ids: np.ndarray  # int64 (N,)
    # Optional cache: rows ordered by class, and each class's bounds in that order.
    order: np.ndarray | None = None
    bounds: np.ndarray | None = None


def top_rows(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest similarities, best first."""
    n = min(n, len(sims))
    if n <= 0:
        return np.empty(0, dtype=np.intp)
    part = np.argpartition(-sims, n - 1)[:n] if n < len(sims) else np.arange(len(sims))
    return part[np.argsort(-sims[part], kind="stable")]


def knn_scores(sims: np.ndarray, codes: np.ndarray, n_classes: int, k: int) -> np.ndarray:
    """Vote shares of the k nearest examples; ties go to the higher summed similarity."""
    rows = top_rows(sims, k)
    votes = np.bincount(codes[rows], minlength=n_classes).astype(np.float64)
    # A tiny tie-breaker that never outweighs a whole vote.
    tie = np.bincount(codes[rows], weights=sims[rows], minlength=n_classes) * 1e-6
    return (votes + tie) / max(1, len(rows))


def balanced_scores(
    sims: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    k: int,
    grouping: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per class: mean similarity of its own min(k, size) nearest examples."""
    if len(sims) <= SMALL_STORE:
        return _balanced_sorted(sims, codes, n_classes, k)
    if grouping is None:
        order = np.argsort(codes, kind="stable")
        grouping = order, np.searchsorted(codes[order], np.arange(n_classes + 1))
    order, bounds = grouping
    grouped = sims[order]
    scores = np.full(n_classes, -np.inf)
    for c in range(n_classes):
        seg = grouped[bounds[c] : bounds[c + 1]]
        if len(seg):
            m = min(k, len(seg))
            scores[c] = np.partition(seg, len(seg) - m)[len(seg) - m :].mean()
    return scores


# Up to this many examples one sort beats a loop over the classes (the per-frame
# cost that matters for a freshly taught store); above it, the loop over the
# cached class grouping does less work.
SMALL_STORE = 2048


def _balanced_sorted(sims: np.ndarray, codes: np.ndarray, n_classes: int, k: int) -> np.ndarray:
    """The same as the loop, with one lexsort: rank each example within its class."""
    order = np.lexsort((-sims, codes))
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(n_classes))
    rank = np.arange(len(order)) - starts[sorted_codes]
    top = rank < k
    sums = np.bincount(sorted_codes[top], weights=sims[order][top], minlength=n_classes)
    counts = np.bincount(sorted_codes[top], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def ncm_scores(class_sums: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of the query to each class's mean embedding (from running sums)."""
    norms = np.linalg.norm(class_sums, axis=1)
    scores = (class_sums @ query.astype(np.float64)) / np.where(norms > 0, norms, 1)
    return np.where(norms > 0, scores, -np.inf)


def softmax_shares(scores: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros_like(scores)
    z = np.where(finite, scores / temperature, -np.inf)
    e = np.exp(z - z[finite].max())
    return e / e.sum()


def decide(
    class_scores: np.ndarray,
    shares: np.ndarray,
    sims: np.ndarray,
    examples: Examples,
    threshold: float,
    similarity: float | None = None,
) -> Prediction:
    """Assemble a Prediction from per-class scores (pure).

    ``unknown`` compares ``similarity`` with the threshold: by default the
    cosine of the nearest example; ``logreg`` passes its own (see classify).
    """
    if len(sims) == 0 or not len(examples.labels):
        return Prediction(None, 0.0, {}, 0.0, True, ())
    best = int(np.argmax(class_scores))
    near = top_rows(sims, NEIGHBORS_REPORTED)
    neighbors = tuple(
        Neighbor(examples.labels[examples.codes[i]], float(sims[i]), int(examples.ids[i])) for i in near
    )
    if similarity is None:
        similarity = float(sims[near[0]])
    present = np.bincount(examples.codes, minlength=len(examples.labels)) > 0
    scores = {examples.labels[c]: float(shares[c]) for c in range(len(examples.labels)) if present[c]}
    return Prediction(
        label=examples.labels[best],
        confidence=float(shares[best]),
        scores=scores,
        similarity=similarity,
        unknown=similarity < threshold,
        neighbors=neighbors,
    )


def classify(
    query: np.ndarray,
    sims: np.ndarray,
    class_sums: np.ndarray,
    examples: Examples,
    *,
    k: int,
    method: str,
    threshold: float,
    head: Head | None = None,
    features: FeatureTransform = RAW,
) -> Prediction:
    """Classify one query given its similarities to every stored example.

    ``class_sums[c]`` is the sum of class c's embeddings (kept up to date by
    the store), from which the class means come.  ``k``, ``method`` and
    ``threshold`` have no defaults here: they are the ``[classifier]``
    config's ``k``, ``method`` and ``unknown_threshold``, whose defaults and
    ranges are stated there.  ``head`` is the fitted
    few-shot head for ``logreg``, only if it was fitted on these very examples;
    without it ``logreg`` answers with the class means of the transformed
    features (``features``).  For ``logreg`` the similarity that decides
    ``unknown`` is the cosine, in feature space, to the winning class's mean:
    near 0 for a photo unlike anything taught, since the features are centred
    on a generic photo.
    """
    n_classes = len(examples.labels)
    if len(sims) == 0:
        return decide(np.empty(0), np.empty(0), sims, examples, threshold)
    if method == "logreg":
        feats = features.apply(query)
        sums = class_sums[:n_classes]
        if head is None:
            present = np.linalg.norm(sums, axis=1) > 0
            cosines = np.where(present, features.apply(sums) @ feats, -np.inf)
            scores, shares = cosines, softmax_shares(cosines)
        else:
            cosines = head.prototype_similarities(feats, examples.labels)
            scores = head.logits(feats, examples.labels)
            shares = softmax_shares(scores, 1.0)
        best = float(cosines[int(np.argmax(scores))])
        return decide(scores, shares, sims, examples, threshold, best)
    if method == "knn":
        scores = knn_scores(sims, examples.codes, n_classes, k)
        shares = scores
    elif method == "balanced":
        grouping = None
        if examples.order is not None and examples.bounds is not None:
            grouping = (examples.order, examples.bounds)
        own = balanced_scores(sims, examples.codes, n_classes, k, grouping)
        scores = (own + ncm_scores(class_sums[:n_classes], query)) / 2
        shares = softmax_shares(scores)
    else:  # "ncm", the last of METHODS (the config allows no other)
        scores = ncm_scores(class_sums[:n_classes], query)
        shares = softmax_shares(scores)
    return decide(scores, shares, sims, examples, threshold)


class Smoother:
    """Majority over the last N predicted labels (ties go to the most recent)."""

    def __init__(self, window: int) -> None:
        self._recent: deque[str | None] = deque(maxlen=window)

    def push(self, label: str | None) -> str | None:
        self._recent.append(label)
        counts = Counter(self._recent)
        top = max(counts.values())
        for candidate in reversed(self._recent):
            if counts[candidate] == top:
                return candidate
        return None  # unreachable: the deque is not empty

    def reset(self) -> None:
        self._recent.clear()
