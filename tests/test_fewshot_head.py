"""The few-shot head: logistic regression, the feature transform, the background refit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeknn import logreg
from edgeknn.classify import Examples, classify
from edgeknn.config import ClassifierConfig, EmbedderConfig
from edgeknn.errors import ModelError
from edgeknn.features import FeatureTransform, decode_mean, encode_mean, generic_mean
from edgeknn.head import fit_head, views_in_effect
from edgeknn.images import load_image
from edgeknn.results import Frame
from edgeknn.service.engine import Engine
from edgeknn.service.pipeline import FrameSlot
from edgeknn.service.refit import Refitter, even_sample, wait_for_head
from edgeknn.service.teacher import Teacher
from edgeknn.service.viewmaker import ViewMaker
from edgeknn.store import NewExample, Store
from edgeknn.vision.engines import embedder_from_config
from edgeknn.vision.models import parse_manifest
from tests.conftest import DATASETS, SHARED_MODELS


def clusters(rng, n_classes, per_class, dim=32, spread=0.3):
    centres = rng.normal(size=(n_classes, dim))
    x = np.repeat(centres, per_class, axis=0) + spread * rng.normal(size=(n_classes * per_class, dim))
    return np.abs(x).astype(np.float32), [f"c{i}" for i in range(n_classes) for _ in range(per_class)]


def test_logistic_regression_separates_what_the_class_means_confuse():
    # Class b differs from a only slightly along dimension 1; dimension 0 is large
    # noise that pulls samples towards the wrong class mean.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8)) * [8, 0.1, 1, 1, 1, 1, 1, 1]
    b = rng.normal(size=(20, 8)) * [8, 0.1, 1, 1, 1, 1, 1, 1] + [0, 1, 0, 0, 0, 0, 0, 0]
    x, truth = np.vstack([a, b]), np.array(["a"] * 20 + ["b"] * 20)
    model = logreg.fit(x, truth)
    predicted = np.array(model.labels)[model.scores(x).argmax(1)]
    means = np.stack([a.mean(0), b.mean(0)])
    nearest_mean = np.array(["a", "b"])[((x[:, None] - means) ** 2).sum(-1).argmin(1)]
    assert (predicted == truth).mean() == 1.0 > (nearest_mean == truth).mean()


def test_a_warm_refit_after_one_add_needs_fewer_iterations_than_a_cold_one():
    rng = np.random.default_rng(1)
    x, labels = clusters(rng, 10, 10)
    cold = logreg.fit(x, labels)
    extra, _ = clusters(np.random.default_rng(2), 10, 1)
    warm = logreg.fit(np.vstack([x, extra[:1]]), labels + ["c0"], warm=cold)
    again = logreg.fit(np.vstack([x, extra[:1]]), labels + ["c0"])
    assert warm.iterations < again.iterations


def test_the_transform_centres_on_the_generic_mean_so_an_ordinary_photo_is_near_zero():
    rng = np.random.default_rng(3)
    generic = np.abs(rng.normal(size=(200, 16))).astype(np.float32)
    transform = FeatureTransform(0.5, generic_mean(generic, 0.5))
    ordinary = transform.apply(generic.mean(axis=0))
    raw_cosine = float(generic[0] @ generic[1] / np.linalg.norm(generic[0]) / np.linalg.norm(generic[1]))
    centred = transform.apply(generic[:2])
    assert np.linalg.norm(ordinary) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(centred[0] @ centred[1])) < raw_cosine / 2


def test_the_transform_id_names_power_and_mean_and_changes_with_either():
    mean = np.full(4, 0.5, np.float32)
    ids = {FeatureTransform().id, FeatureTransform(0.5).id, FeatureTransform(0.5, mean).id,
           FeatureTransform(0.5, mean * 0.9).id}
    assert len(ids) == 4
    assert FeatureTransform(0.5, mean).id.startswith("pow0.5-mean")


def test_the_manifest_mean_round_trips_and_a_bad_one_names_its_key():
    mean = np.linspace(0, 1, 8).astype(np.float16).astype(np.float32)
    assert np.array_equal(decode_mean(encode_mean(mean), "x"), mean)
    table = {"models": {"e": {"file": "e.tflite", "url": "https://x/e", "sha256": "0" * 64,
                              "kind": "embedder", "feature_power": 0.5, "feature_mean": "not base64!"}}}
    with pytest.raises(ModelError, match="models.e.feature_mean"):
        parse_manifest(table)
    table["models"]["e"]["feature_mean"] = encode_mean(mean)
    table["models"]["e"]["feature_power"] = 2
    with pytest.raises(ModelError, match="models.e.feature_power"):
        parse_manifest(table)


def test_the_default_embedder_carries_its_transform_into_the_head_fingerprint():
    embedder = embedder_from_config(EmbedderConfig(accelerator="cpu"), SHARED_MODELS)
    assert embedder.info.features.id.startswith("pow0.5-mean")
    assert embedder.info.head_fingerprint == f"{embedder.info.fingerprint}+{embedder.info.features.id}"


def test_without_a_fresh_head_logreg_answers_with_the_transformed_class_means():
    rng = np.random.default_rng(4)
    x, labels = clusters(rng, 3, 5)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = np.array([int(label[1:]) for label in labels], np.int32)
    sums = np.zeros((3, x.shape[1]))
    np.add.at(sums, codes, x)
    examples = Examples(("c0", "c1", "c2"), codes, np.arange(15, dtype=np.int64))
    query = x[7]
    pred = classify(query, x @ query, sums, examples, k=3, method="logreg", threshold=0.0)
    head = fit_head(x, labels, FeatureTransform(), version=0)
    fitted = classify(query, x @ query, sums, examples, k=3, method="logreg", threshold=0.0, head=head)
    assert pred.label == fitted.label == "c1"
    assert pred.scores != fitted.scores


def test_views_auto_mirrors_on_the_edge_tpu_and_crops_on_the_cpu():
    assert views_in_effect("auto", "edgetpu") == "mirror"
    assert views_in_effect("auto", "cpu") == "crops"
    assert views_in_effect("mirror", "cpu") == "mirror"
    assert views_in_effect("none", "edgetpu") == "none"


def test_a_big_store_is_sampled_evenly_across_classes_for_the_fit():
    labels = np.array(["big"] * 900 + ["small"] * 50 + ["mid"] * 300)
    keep = even_sample(labels, 400)
    chosen = dict(zip(*np.unique(labels[keep], return_counts=True), strict=True))
    assert len(keep) == 400 and chosen["small"] == 50 and chosen["mid"] == chosen["big"] == 175


@pytest.fixture
def digits_store(tmp_path):
    """A store of 10 hand-sign classes x 10 real embeddings, and the embedder that made them."""
    embedder = embedder_from_config(EmbedderConfig(accelerator="cpu", threads=1), SHARED_MODELS)
    store = Store.open(tmp_path / "s.db")
    store.bind(embedder.info.fingerprint, embedder.info.dim)
    folders = sorted(p for p in (DATASETS / "sign_language_digits").iterdir() if p.is_dir())
    items = []
    for folder in folders:
        for path in sorted(folder.iterdir())[:10]:
            items.append(NewExample(folder.name, embedder.embed(load_image(path))))
    store.add_many(items)
    yield store, embedder, folders
    store.close()


def test_a_button_press_on_a_10x10_store_changes_the_next_scores_and_the_refit_follows(digits_store):
    store, embedder, folders = digits_store
    refitter = Refitter(store, embedder.info.features, debounce=0.05)
    refitter.start()
    try:
        engine = Engine(embedder, store, ClassifierConfig(method="logreg", views="none"), refitter=refitter)
        assert wait_for_head(refitter, store.version, timeout=30) is not None
        query = load_image(sorted(folders[3].iterdir())[40])
        _, before = engine.embed_and_predict(query)
        slot = FrameSlot()
        slot.put(Frame(load_image(sorted(folders[3].iterdir())[20]), 1, time.monotonic(), time.time()))
        teacher = Teacher(engine, slot, on_change=lambda counts: None, default_target="frame")
        teacher.add_from_button(folders[3].name)
        # The very next frame already counts the new example (the class means answer) ...
        _, next_frame = engine.embed_and_predict(query)
        assert next_frame.scores != before.scores
        # ... and the refit lands in the background; print how long it took.
        started = time.monotonic()
        head = wait_for_head(refitter, store.version, timeout=30)
        assert head is not None and head.rows == 101
        print(f"refit after the press landed in {time.monotonic() - started:.3f} s (fit {head.seconds:.3f} s)")
        _, refitted = engine.embed_and_predict(query)
        assert refitted.scores != before.scores and refitted.scores != next_frame.scores
    finally:
        assert refitter.stop()


def test_crop_views_follow_a_taught_example_after_it_is_stored(digits_store):
    store, embedder, folders = digits_store
    engine = Engine(embedder, store, ClassifierConfig(method="logreg"))  # auto: crops on the CPU
    assert engine.views == "crops"
    maker = ViewMaker(engine)  # not started: drained by hand below
    slot = FrameSlot()
    teacher = Teacher(engine, slot, on_change=lambda counts: None, default_target="frame", view_maker=maker)
    images = [load_image(p) for p in sorted(folders[3].iterdir())[20:22]]
    slot.put(Frame(images[0], 1, time.monotonic(), time.time()))
    [kept] = teacher.add(folders[3].name)["example_ids"]
    # Stored and counted at once (one invoke on the teaching path); its views wait.
    assert len(store) == 101 and store.view_count() == 0 and maker.pending() == 1
    slot.put(Frame(images[1], 2, time.monotonic(), time.time()))
    [gone] = teacher.add(folders[3].name)["example_ids"]
    store.remove(gone)  # removed before its views are made: it gets none
    maker.drain()
    assert store.view_count() == 5 and maker.made == 1
    rows, labels, _ = store.snapshot()
    assert len(labels) == 106 and labels[-5:] == [folders[3].name] * 5
    # The views are the frame's mirror and corners: close to it, none equal to it.
    own = embedder.embed(images[0])
    similar = rows[-5:].astype(np.float32) @ own
    assert np.all(similar > 0.7) and np.all(similar < 0.9999), similar


def test_a_mirror_view_is_stored_beside_its_example_and_goes_with_it(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.bind("fp", 4)
    v = np.array([1, 0, 0, 0], np.float32)
    [kept] = store.add_many([NewExample("a", v, mirror=v[::-1].copy())])
    [gone] = store.add_many([NewExample("b", v, mirror=v[::-1].copy())])
    rows, labels, _ = store.snapshot()
    assert sorted(labels) == ["a", "a", "b", "b"] and store.view_count() == 2
    store.remove(gone)
    store.rename("a", "z")
    rows, labels, _ = store.snapshot()
    assert labels == ["z", "z"] and store.view_count() == 1 and kept
    store.close()


def test_models_features_prints_manifest_lines_for_a_stated_image_set(tmp_path, capsys):
    import shutil
    import tomllib

    from edgeknn.cli import main

    for path in sorted((DATASETS / "raccoon" / "images").iterdir())[:3]:
        shutil.copy(path, tmp_path / path.name)
    assert main(["models", "features", str(tmp_path), "--accelerator", "cpu"]) == 0
    lines = tomllib.loads(capsys.readouterr().out)
    mean = decode_mean(lines["feature_mean"], "output")
    assert lines["feature_power"] == 0.5 and mean.shape == (1024,)


def test_the_two_model_embedder_concatenates_unit_halves_and_names_both_in_its_fingerprint():
    pair = embedder_from_config(EmbedderConfig("mobilenet_v1_v2_concat", accelerator="cpu", threads=1), SHARED_MODELS)
    v1 = embedder_from_config(EmbedderConfig("mobilenet_v1_embedder", accelerator="cpu", threads=1), SHARED_MODELS)
    image = load_image(sorted((DATASETS / "hymenoptera" / "ants").iterdir())[0])
    joined = pair.embed(image)
    assert pair.info.dim == 1024 + 1280 and joined.shape == (2304,)
    assert v1.info.fingerprint in pair.info.fingerprint and "MobilenetV2/Logits/AvgPool" in pair.info.fingerprint
    assert np.allclose(joined[:1024] * np.sqrt(2), v1.embed(image), atol=1e-5)
    assert pair.info.features.mean is not None and pair.info.features.mean.shape == (2304,)


def test_a_manifest_entry_with_parts_must_name_cpu_entries_with_an_embedding_tensor():
    base = {"file": "a.tflite", "url": "https://x/a", "sha256": "0" * 64, "kind": "embedder",
            "embedding_tensor": "t"}
    table = {"models": {"a": base, "b": {**base, "file": "b.tflite"},
                        "ab": {"kind": "embedder", "parts": ["a", "b"]}}}
    assert parse_manifest(table)["ab"].parts == ("a", "b")
    table["models"]["ab"]["parts"] = ["a", "nope"]
    with pytest.raises(ModelError, match="models.ab.parts"):
        parse_manifest(table)
    table["models"]["ab"] = {"kind": "embedder", "parts": ["a", "b"], "file": "x.tflite"}
    with pytest.raises(ModelError, match="models.ab.file"):
        parse_manifest(table)
