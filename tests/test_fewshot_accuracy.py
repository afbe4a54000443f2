"""The few-shot goal of issue 12, on the real v1 embedder and the shared sets.

Margins and seeds are stated here, and checked on seeds nobody tuned for:
- ``logreg+mirror`` (the default on the Edge TPU): mean over the 9 cells
  (3 sets x 3, 5, 7 shots, each the mean of 10 seeds) at least 4 points above
  the nearest class mean, and no cell below it; on seeds 0-9 (tuned on: 4.3
  measured) and on seeds 100-109 (not tuned on: 4.2 measured).
- ``logreg+crops`` (the CPU-only default: each taught frame also stored
  mirrored and as its 4 corner crops, frames classified alone): mean at least
  4 points above the class mean and no cell below it, on seeds 0-9 (chosen
  on: 4.39 measured) and on seeds 100-109 (not chosen on: 4.45 measured; worst cell +0.2, on
  hymenoptera at 7 shots).
- ``logreg`` without views: no cell below the class mean and a mean at least
  3 points above it (3.77 and 3.52 measured; worst cell +0.3, on hymenoptera
  at 7 shots, seeds 100-109).
- ``unknown`` (threshold 0.25 on the cosine to the winning class's mean
  feature) fires on most photos of a set never taught and on few held-out
  photos of taught classes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATASETS, SHARED_MODELS

from edgeknn.classify import Examples, classify
from edgeknn.config import ClassifierConfig, EmbedderConfig
from edgeknn.dataset import load_dataset
from edgeknn.head import fit_head
from edgeknn.images import corner_views, load_image
from edgeknn.tools.evaluation import evaluate
from edgeknn.vision.engines import embedder_from_config

SETS = ("flower_photos", "sign_language_digits", "hymenoptera")
THRESHOLD = ClassifierConfig().unknown_threshold  # the default, 0.25
SHOTS = (3, 5, 7)


@pytest.fixture(scope="module")
def embedder():
    return embedder_from_config(EmbedderConfig(accelerator="cpu"), SHARED_MODELS)


@pytest.fixture(scope="module")
def embedded(embedder):
    """Each set embedded as `edgeknn eval` does: centre crop, mirrored, and the 4 corner views."""
    out = {}
    w, h = embedder.info.input_size
    for name in SETS:
        classes = load_dataset(DATASETS / name)
        vectors, mirrored, corners, codes = [], [], [], []
        for code, label in enumerate(classes):
            for path in classes[label]:
                image = load_image(path)
                vectors.append(embedder.embed(image))
                mirrored.append(embedder.embed(np.ascontiguousarray(image[:, ::-1])))
                corners.append([embedder.embed(v) for v in corner_views(image, w, h, embedder.resize)])
                codes.append(code)
        out[name] = (tuple(classes), np.stack(vectors), np.stack(mirrored), np.array(corners), np.array(codes))
    return out


@pytest.fixture(scope="module", params=[0, 100], ids=["seeds 0-9", "seeds 100-109"])
def gains(request, embedded, embedder):
    """Points above the class mean per method and (set, shots) cell, each the mean over 10 seeds."""
    seeds = list(range(request.param, request.param + 10))
    cells: dict[str, dict[tuple[str, int], float]] = {}
    for name, (labels, vectors, mirrored, corners, codes) in embedded.items():
        for shots in SHOTS:
            results = {r.name: r for r in evaluate(vectors, codes, labels, shots=shots, seeds=seeds, k=3,
                                                   features=embedder.info.features, mirrored=mirrored,
                                                   corners=corners,
                                                   only=("class-mean", "logreg", "logreg+mirror", "logreg+crops"))}
            for method, r in results.items():
                cells.setdefault(method, {})[name, shots] = (r.mean - results["class-mean"].mean) * 100
    for method in ("logreg+mirror", "logreg+crops", "logreg"):
        print(method, f"seeds {seeds[0]}..{seeds[-1]}:", {k: round(v, 1) for k, v in cells[method].items()},
              "mean", round(float(np.mean(list(cells[method].values()))), 2))
    return cells


@pytest.mark.slow
def test_the_edge_tpu_default_is_4_points_above_the_class_mean_in_no_cell_below(gains):
    cells = gains["logreg+mirror"]
    assert np.mean(list(cells.values())) >= 4.0, cells
    assert min(cells.values()) >= 0.0, cells


@pytest.mark.slow
def test_the_cpu_default_is_4_points_above_the_class_mean_in_no_cell_below(gains):
    cells = gains["logreg+crops"]
    assert np.mean(list(cells.values())) >= 4.0, cells
    assert min(cells.values()) >= 0.0, cells


@pytest.mark.slow
def test_logreg_without_views_is_3_points_above_the_class_mean_in_no_cell_below(gains):
    cells = gains["logreg"]
    assert np.mean(list(cells.values())) >= 3.0, cells
    assert min(cells.values()) >= 0.0, cells


def test_unknown_fires_on_a_set_never_taught_and_rarely_on_taught_classes(embedder):
    flowers = load_dataset(DATASETS / "flower_photos")
    labels = tuple(flowers)
    taught, held_out = [], []
    for label in labels:
        taught += [(label, embedder.embed_file(p)) for p in flowers[label][:5]]
        held_out += [embedder.embed_file(p) for p in flowers[label][50:54]]
    never = [embedder.embed_file(p) for p in sorted((DATASETS / "raccoon" / "images").iterdir())[:10]]
    never += [embedder.embed_file(p) for folder in ("0", "5") for p in
              sorted((DATASETS / "sign_language_digits" / folder).iterdir())[:5]]
    matrix = np.stack([v for _, v in taught])
    codes = np.array([labels.index(label) for label, _ in taught], np.int32)
    sums = np.zeros((len(labels), matrix.shape[1]))
    np.add.at(sums, codes, matrix)
    examples = Examples(labels, codes, np.arange(len(codes), dtype=np.int64))
    head = fit_head(matrix, [label for label, _ in taught], embedder.info.features, version=0)

    def unknown_share(queries):
        preds = [classify(q, matrix @ q, sums, examples, k=3, method="logreg", head=head,
                          features=embedder.info.features, threshold=THRESHOLD) for q in queries]
        return np.mean([p.unknown for p in preds])

    assert unknown_share(never) >= 0.8
    assert unknown_share(held_out) <= 0.15
