"""The few-shot goal of issue 12, on the real v1 embedder and the shared sets.

Margins and seeds are stated here, and checked on seeds nobody tuned for:
- ``logreg+mirror`` (the default on the Edge TPU): mean over the 9 cells
  (3 sets x 3, 5, 7 shots, each the mean of 10 seeds) at least 4 points above
  the nearest class mean, and no cell below it; on seeds 0-9 (tuned on: 4.3
  measured) and on seeds 100-109 (not tuned on: 4.2 measured).
- ``logreg`` without views (the CPU-only default): no cell below the class
  mean and a mean at least 3 points above it (3.8 and 3.7 measured).
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
from edgeknn.images import load_image
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
    """Each set embedded as `edgeknn eval` does: centre crop, and mirrored."""
    out = {}
    for name in SETS:
        classes = load_dataset(DATASETS / name)
        vectors, mirrored, codes = [], [], []
        for code, label in enumerate(classes):
            for path in classes[label]:
                image = load_image(path)
                vectors.append(embedder.embed(image))
                mirrored.append(embedder.embed(np.ascontiguousarray(image[:, ::-1])))
                codes.append(code)
        out[name] = (tuple(classes), np.stack(vectors), np.stack(mirrored), np.array(codes))
    return out


def gains(embedded, embedder, seeds, method):
    """Points above the class mean per (set, shots) cell, each the mean over the seeds."""
    cells = {}
    for name, (labels, vectors, mirrored, codes) in embedded.items():
        for shots in SHOTS:
            results = {r.name: r for r in evaluate(vectors, codes, labels, shots=shots, seeds=seeds, k=3,
                                                   features=embedder.info.features, mirrored=mirrored)}
            cells[name, shots] = (results[method].mean - results["class-mean"].mean) * 100
    print(method, f"seeds {seeds[0]}..{seeds[-1]}:", {k: round(v, 1) for k, v in cells.items()},
          "mean", round(float(np.mean(list(cells.values()))), 2))
    return cells


@pytest.mark.slow
@pytest.mark.parametrize("first_seed", [0, 100])
def test_the_edge_tpu_default_is_4_points_above_the_class_mean_in_no_cell_below(
        embedded, embedder, first_seed):
    cells = gains(embedded, embedder, list(range(first_seed, first_seed + 10)), "logreg+mirror")
    assert np.mean(list(cells.values())) >= 4.0, cells
    assert min(cells.values()) >= 0.0, cells


@pytest.mark.slow
@pytest.mark.parametrize("first_seed", [0, 100])
def test_the_cpu_default_is_3_points_above_the_class_mean_in_no_cell_below(
        embedded, embedder, first_seed):
    cells = gains(embedded, embedder, list(range(first_seed, first_seed + 10)), "logreg")
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
