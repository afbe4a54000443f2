"""The engine's seams: one contract for the real models and their fakes, and the locking rule."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import IMAGES, MODELS

from edgeknn.config import ClassifierConfig, DetectorConfig
from edgeknn.errors import DetectorError, ModelError
from edgeknn.images import load_image
from edgeknn.service.engine import Detects, Embeds, Engine
from edgeknn.vision.detector import open_detector
from edgeknn.vision.embedder import open_embedder
from edgeknn.vision.fake import FakeAccelerator, FakeDetector, FakeEmbedder

CAT = load_image(IMAGES / "cat.bmp")


def real_embedder() -> Embeds:
    return open_embedder(MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                         accelerator="cpu", threads=1, resize="center-crop")


def fake_embedder() -> Embeds:
    return FakeEmbedder()


def real_detector() -> Detects:
    return open_detector(MODELS / "ssd_mobilenet_v1_pets_quant_postprocess.tflite", MODELS / "pets_labels.txt",
                         DetectorConfig(threads=1, threshold=0.3))


def fake_detector() -> Detects:
    detector = FakeDetector()
    detector.add_object("cat", (100, 20, 300, 200), score=0.8)
    detector.add_object("dog", (0, 0, 50, 40), score=0.95)
    return detector


# ----- the contract, for the real models and the fakes alike ----------------------------------


@pytest.mark.parametrize("make", [real_embedder, fake_embedder], ids=["real", "fake"])
def test_an_embedder_gives_a_unit_vector_of_its_stated_width_for_any_image_size(make):
    embedder = make()
    for image in (CAT, CAT[::3, ::2], np.full((7, 300, 3), 90, np.uint8)):
        vector = embedder.embed(image)
        assert vector.dtype == np.float32 and vector.shape == (embedder.info.dim,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert embedder.info.backend in ("cpu", "edgetpu")


@pytest.mark.parametrize("make", [real_embedder, fake_embedder], ids=["real", "fake"])
def test_an_embedder_gives_the_same_image_the_same_embedding(make):
    embedder = make()
    assert np.array_equal(embedder.embed(CAT), embedder.embed(CAT.copy()))


@pytest.mark.parametrize("make", [real_detector, fake_detector], ids=["real", "fake"])
def test_a_detector_gives_boxes_inside_the_frame_best_first(make):
    found = make().detect(CAT)
    assert found
    h, w = CAT.shape[:2]
    for d in found:
        x0, y0, x1, y1 = d.box_px
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert 0 <= d.box.xmin < d.box.xmax <= 1 and 0 <= d.box.ymin < d.box.ymax <= 1
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_the_fakes_fail_as_the_real_models_do_when_asked():
    embedder, detector = FakeEmbedder(), FakeDetector()
    embedder.fail_next()
    detector.fail_next()
    with pytest.raises(ModelError):
        embedder.embed(CAT)
    with pytest.raises(DetectorError):
        detector.detect(CAT)
    embedder.embed(CAT)
    detector.detect(CAT)  # once only


# ----- the engine -----------------------------------------------------------------------------


def test_the_embedder_and_the_detector_never_run_at_once_whichever_threads_ask(store):
    """Rule 1 of service/engine.py: one inference at a time (they may share one Edge TPU)."""
    tpu = FakeAccelerator(seconds_per_run=0.002)
    engine = Engine(FakeEmbedder(accelerator=tpu), store, ClassifierConfig(), FakeDetector(accelerator=tpu))
    start = threading.Barrier(4)

    def work(call) -> None:
        start.wait()
        for _ in range(20):
            call(CAT)

    threads = [threading.Thread(target=work, args=(call,))
               for call in (engine.embed, engine.detect, engine.embed_and_predict, engine.detect)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert tpu.runs == 80 and tpu.most_at_once == 1


def test_the_accelerator_would_see_overlap_without_the_engine(store):
    """The check above can fail: the same calls made around the engine do overlap."""
    tpu = FakeAccelerator(seconds_per_run=0.002)
    embedder, detector = FakeEmbedder(accelerator=tpu), FakeDetector(accelerator=tpu)
    start = threading.Barrier(2)

    def work(call) -> None:
        start.wait()
        for _ in range(20):
            call(CAT)

    threads = [threading.Thread(target=work, args=(call,)) for call in (embedder.embed, detector.detect)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert tpu.most_at_once == 2


def test_predictions_use_the_classifier_settings_in_force(store):
    engine = Engine(FakeEmbedder(), store, ClassifierConfig())
    store.add("cat", engine.embed(CAT))
    _, before = engine.embed_and_predict(CAT[::-1])
    engine.classifier = ClassifierConfig(unknown_threshold=1.0)  # as SIGHUP replaces them
    _, after = engine.embed_and_predict(CAT[::-1])
    assert before.unknown is False and after.unknown is True and after.label == "cat"


def test_detecting_without_a_detector_says_how_to_enable_one(store):
    with pytest.raises(DetectorError, match=r"\[detector\] enabled = true"):
        Engine(FakeEmbedder(), store, ClassifierConfig()).detect(CAT)
