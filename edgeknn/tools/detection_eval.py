"""COCO-style detection metrics, computed as pycocotools' COCOeval does for boxes.

AP is averaged over IoU thresholds 0.50:0.05:0.95 and 101 recall points
(precision made monotone, then read at each recall point), per class, then
over classes; AR@k is the recall reached with at most k detections per image
and class, averaged over thresholds and classes.  Only the "all" area range
is computed.  A class counts only if it has ground truth; detections of other
classes are left out, as COCO leaves out categories not in its ground truth.

Ground truth marked ``ignore`` (Pascal VOC's ``difficult``) neither needs to
be found nor makes a false positive of the detection that finds it; unlike
COCO crowd regions, its IoU is the ordinary one.

Pure: numpy in, frozen dataclasses out; no files, no models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeknn.boxes import iou_matrix
from edgeknn.errors import AnnotationError, DetectorError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = (1, 10, 100)
_T50, _T75 = 0, 5  # indices of IoU 0.50 and 0.75 in IOU_THRESHOLDS


@dataclass(frozen=True)
class GroundTruthBox:
    image: Hashable
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    ignore: bool = False


@dataclass(frozen=True)
class ScoredBox:
    image: Hashable
    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class ClassMetrics:
    """One class's numbers; None where COCO would print -1 (nothing to measure)."""

    label: str
    ground_truths: int
    detections: int
    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None


@dataclass(frozen=True)
class CocoMetrics:
    ap: float | None  # AP@[.50:.95]
    ap50: float | None
    ap75: float | None
    ar1: float | None
    ar10: float | None
    ar100: float | None
    per_class: tuple[ClassMetrics, ...]
    images: int
    ground_truths: int
    detections: int  # detections of the evaluated classes
    ignored_detections: int  # detections of classes with no ground truth

    def as_dict(self) -> dict:
        return {
            "AP": self.ap, "AP50": self.ap50, "AP75": self.ap75,
            "AR1": self.ar1, "AR10": self.ar10, "AR100": self.ar100,
            "images": self.images, "ground_truths": self.ground_truths,
            "detections": self.detections, "ignored_detections": self.ignored_detections,
            "per_class": [
                {"label": c.label, "ground_truths": c.ground_truths, "detections": c.detections,
                 "AP": c.ap, "AP50": c.ap50, "AP75": c.ap75, "AR100": c.ar100}
                for c in self.per_class
            ],
        }


@dataclass(frozen=True)
class _ImageResult:
    """One image and class: detections best first, matched/ignored per IoU threshold."""

    scores: np.ndarray  # (D,)
    matched: np.ndarray  # (T, D) bool
    ignored: np.ndarray  # (T, D) bool
    gt_ignored: np.ndarray  # (G,) bool


def match_image(
    gt_boxes: np.ndarray, gt_ignore: np.ndarray, dt_boxes: np.ndarray, dt_scores: np.ndarray
) -> _ImageResult:
    """Greedy matching at every IoU threshold, exactly as COCOeval.evaluateImg."""
    gt_order = np.argsort(gt_ignore.astype(int), kind="mergesort")  # ignored ground truth last
    gt_boxes, gt_ignore = gt_boxes[gt_order], gt_ignore[gt_order]
    dt_order = np.argsort(-dt_scores, kind="mergesort")[: MAX_DETECTIONS[-1]]
    dt_boxes, dt_scores = dt_boxes[dt_order], dt_scores[dt_order]
    t, d, g = len(IOU_THRESHOLDS), len(dt_scores), len(gt_boxes)
    matched = np.zeros((t, d), bool)
    ignored = np.zeros((t, d), bool)
    if d and g:
        ious = iou_matrix(dt_boxes, gt_boxes)
        for ti, threshold in enumerate(IOU_THRESHOLDS):
            taken = np.zeros(g, bool)
            for di in range(d):
                best, m = min(threshold, 1 - 1e-10), -1
                for gi in range(g):
                    if taken[gi]:
                        continue
                    if m > -1 and not gt_ignore[m] and gt_ignore[gi]:
                        break  # matched real ground truth; the rest is ignored
                    if ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m > -1:
                    ignored[ti, di] = gt_ignore[m]
                    matched[ti, di] = True
                    taken[m] = True
    return _ImageResult(dt_scores, matched, ignored, gt_ignore)


def accumulate(results: Sequence[_ImageResult], max_dets: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R) at the recall points and recall (T,) over images; -1 if no ground truth."""
    t, r = len(IOU_THRESHOLDS), len(RECALL_POINTS)
    precision, recall = -np.ones((t, r)), -np.ones(t)
    if not results:
        return precision, recall
    scores = np.concatenate([e.scores[:max_dets] for e in results])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched[:, :max_dets] for e in results], axis=1)[:, order]
    ignored = np.concatenate([e.ignored[:, :max_dets] for e in results], axis=1)[:, order]
    positives = int(np.count_nonzero(~np.concatenate([e.gt_ignored for e in results])))
    if positives == 0:
        return precision, recall
    tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    n = tp.shape[1]
    for ti in range(t):
        rc = tp[ti] / positives
        pr = tp[ti] / (fp[ti] + tp[ti] + np.spacing(1))
        recall[ti] = rc[-1] if n else 0.0
        envelope = np.maximum.accumulate(pr[::-1])[::-1]  # best precision at this recall or more
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        q = np.zeros(r)
        inside = at < n
        q[inside] = envelope[at[inside]]
        precision[ti] = q
    return precision, recall


def _mean(values: np.ndarray) -> float | None:
    kept = values[values > -1]
    return float(np.mean(kept)) if kept.size else None


def evaluate(
    images: Sequence[Hashable],
    ground_truth: Iterable[GroundTruthBox],
    detections: Iterable[ScoredBox],
) -> CocoMetrics:
    """COCO box metrics over ``images`` (every image evaluated, with or without objects).

    Raises ValueError for a box on an image not in ``images``.
    """
    known = {image: k for k, image in enumerate(images)}
    gts: dict[tuple[str, int], list[GroundTruthBox]] = defaultdict(list)
    dts: dict[tuple[str, int], list[ScoredBox]] = defaultdict(list)
    for item in ground_truth:
        gts[item.label, _index(known, item.image)].append(item)
    labels = sorted({label for label, _ in gts})
    ignored_detections = 0
    for det in detections:
        index = _index(known, det.image)
        if det.label in labels:
            dts[det.label, index].append(det)
        else:
            ignored_detections += 1
    m_count = len(MAX_DETECTIONS)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(labels), m_count))
    recall = -np.ones((len(IOU_THRESHOLDS), len(labels), m_count))
    per_class = []
    for k, label in enumerate(labels):
        results = []
        for index in range(len(known)):
            g, d = gts.get((label, index), []), dts.get((label, index), [])
            if not g and not d:
                continue
            results.append(match_image(
                np.array([x.box for x in g], float).reshape(-1, 4),
                np.array([x.ignore for x in g], bool),
                np.array([x.box for x in d], float).reshape(-1, 4),
                np.array([x.score for x in d], float),
            ))
        for m, max_dets in enumerate(MAX_DETECTIONS):
            precision[:, :, k, m], recall[:, k, m] = accumulate(results, max_dets)
        per_class.append(ClassMetrics(
            label,
            ground_truths=sum(not x.ignore for i in range(len(known)) for x in gts.get((label, i), [])),
            detections=sum(min(len(dts.get((label, i), [])), MAX_DETECTIONS[-1])
                           for i in range(len(known))),
            ap=_mean(precision[:, :, k, -1]),
            ap50=_mean(precision[_T50, :, k, -1]),
            ap75=_mean(precision[_T75, :, k, -1]),
            ar100=_mean(recall[:, k, -1]),
        ))
    return CocoMetrics(
        ap=_mean(precision[..., -1]),
        ap50=_mean(precision[_T50, :, :, -1]),
        ap75=_mean(precision[_T75, :, :, -1]),
        ar1=_mean(recall[:, :, 0]),
        ar10=_mean(recall[:, :, 1]),
        ar100=_mean(recall[:, :, 2]),
        per_class=tuple(per_class),
        images=len(known),
        ground_truths=sum(c.ground_truths for c in per_class),
        detections=sum(c.detections for c in per_class),
        ignored_detections=ignored_detections,
    )


def _index(known: dict[Hashable, int], image: Hashable) -> int:
    try:
        return known[image]
    except KeyError:
        raise ValueError(f"box on image {image!r}, which is not among the evaluated images") from None


# --------------------------------------------------------------------------- class names

AGNOSTIC = "object"


def fold_label(label: str) -> str:
    """A class name for matching: case-folded, ``_`` and ``-`` as spaces, spaces collapsed."""
    return " ".join(label.casefold().replace("_", " ").replace("-", " ").split())


def parse_class_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["Abyssinian=cat", ...]`` -> ``{"Abyssinian": "cat"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        label, sep, target = pair.partition("=")
        if not sep or not label.strip() or not target.strip():
            raise AnnotationError(f"--class-map {pair!r}: expected DETECTOR_LABEL=CLASS")
        mapping[label.strip()] = target.strip()
    return mapping


@dataclass(frozen=True)
class LabelMatch:
    """How names meet: annotation spelling -> class, detector label -> class."""

    classes: dict[str, str]
    detections: dict[str, str]


def match_labels(
    detector_labels: Iterable[str],
    annotation_labels: Iterable[str],
    class_map: dict[str, str] | None = None,
    *,
    class_agnostic: bool = False,
) -> tuple[LabelMatch, list[str]]:
    """Match detector labels to annotation classes; also return classes nothing detects.

    Annotation spellings that fold alike (``Apple``, ``apple``) are one class,
    named by the first spelling seen.  A detector label counts as the class
    ``class_map`` gives it, else the class its folded name equals, else none.
    """
    detector_labels = list(detector_labels)
    class_map = class_map or {}
    canonical: dict[str, str] = {}
    spellings: dict[str, str] = {}
    for label in annotation_labels:
        spellings[label] = canonical.setdefault(fold_label(label), label)
    if class_agnostic:
        return LabelMatch({s: AGNOSTIC for s in spellings},
                          {d: AGNOSTIC for d in detector_labels}), []
    unknown = sorted(set(class_map) - set(detector_labels))
    if unknown:
        raise DetectorError(
            f"--class-map names {', '.join(map(repr, unknown))}, not label(s) of the detector"
        )
    detections: dict[str, str] = {}
    for label in detector_labels:
        target = class_map.get(label, label)
        if fold_label(target) in canonical:
            detections[label] = canonical[fold_label(target)]
        elif label in class_map:
            raise AnnotationError(
                f"--class-map {label}={target}: the annotations have no class {target!r}; "
                f"they have {', '.join(sorted(canonical.values())) or 'none'}"
            )
    found = set(detections.values())
    return LabelMatch(spellings, detections), sorted(set(canonical.values()) - found)
