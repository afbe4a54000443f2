"""The embedder on the real MobileNet models, on the CPU interpreter."""

import numpy as np
import pytest
from conftest import IMAGES, MODELS

from edgeknn.errors import EdgeTpuError, EdgeTpuModelOnCpu, ModelError, NotATFLiteModel
from edgeknn.images import load_image
from edgeknn.vision.embedder import open_embedder, quantize_input

EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


@pytest.fixture(scope="module")
def embedder():
    return open_embedder(EXTRACTOR, accelerator="cpu", threads=1, resize="center-crop")


def test_embeddings_are_unit_vectors_of_the_model_width(embedder):
    v = embedder.embed_file(IMAGES / "cat.bmp")
    assert v.shape == (1024,) and v.dtype == np.float32
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert embedder.info.backend == "cpu"


def test_two_cats_are_closer_than_a_cat_and_a_parrot(embedder):
    cat = embedder.embed_file(IMAGES / "imprinting" / "cat_train_0.bmp")
    other_cat = embedder.embed_file(IMAGES / "imprinting" / "cat_test_0.bmp")
    parrot = embedder.embed_file(IMAGES / "parrot.jpg")
    assert cat @ other_cat > cat @ parrot + 0.1


def test_the_same_image_embeds_the_same_at_any_size(embedder):
    image = load_image(IMAGES / "grace_hopper.bmp")
    half = image[::2, ::2]
    assert embedder.embed(image) @ embedder.embed(half) > 0.95


def test_resize_policy_changes_what_the_model_sees():
    wide = np.zeros((100, 400, 3), dtype=np.uint8)
    wide[:, :100] = 255  # a white band at the left edge, cut away by centre-crop
    crop = open_embedder(EXTRACTOR, accelerator="cpu", threads=1, resize="center-crop").embed(wide)
    squash = open_embedder(EXTRACTOR, accelerator="cpu", threads=1, resize="squash").embed(wide)
    black = open_embedder(EXTRACTOR, accelerator="cpu", threads=1, resize="center-crop").embed(
        np.zeros((224, 224, 3), np.uint8))
    assert crop @ black > squash @ black


def test_a_named_intermediate_tensor_serves_as_the_embedding():
    e = open_embedder(MODELS / "mobilenet_v2_1.0_224_quant.tflite",
                      embedding_tensor="MobilenetV2/Logits/AvgPool", accelerator="cpu", threads=1,
                      resize="center-crop")
    assert e.info.dim == 1280
    a = e.embed_file(IMAGES / "imprinting" / "dog_train_0.bmp")
    b = e.embed_file(IMAGES / "imprinting" / "dog_test_0.bmp")
    c = e.embed_file(IMAGES / "sunflower.bmp")
    assert a @ b > a @ c


def test_an_unknown_tensor_name_lists_the_outputs():
    with pytest.raises(ModelError, match="no tensor named 'nope'.*MobilenetV2/Predictions"):
        open_embedder(MODELS / "mobilenet_v2_1.0_224_quant.tflite", embedding_tensor="nope", accelerator="cpu",
                      resize="center-crop")


def test_fingerprint_is_model_hash_and_tensor(embedder):
    assert embedder.info.fingerprint == "f409ef4f73fcbb96:MobilenetV1/Logits/AvgPool_1a/AvgPool"


def test_an_edgetpu_model_without_a_tpu_says_so():
    with pytest.raises(EdgeTpuModelOnCpu, match="edgetpu-custom-op"):
        open_embedder(MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite",
                      accelerator="auto", resize="center-crop")


def test_auto_falls_back_to_the_cpu_model_when_no_tpu_answers():
    e = open_embedder(
        EXTRACTOR,
        edgetpu_model=MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite",
        accelerator="auto",
        resize="center-crop",
    )
    assert e.info.backend == "cpu"


def test_asking_for_the_edgetpu_without_one_is_a_clear_error():
    with pytest.raises(EdgeTpuError, match="libedgetpu|Edge TPU"):
        open_embedder(
            EXTRACTOR,
            edgetpu_model=MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite",
            accelerator="edgetpu",
            resize="center-crop",
        )


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"<html>404</html>" * 10)
    with pytest.raises(NotATFLiteModel, match=str(bad)):
        open_embedder(bad, accelerator="cpu", resize="center-crop")


def test_inputs_follow_the_model_quantization():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    # scale 1/128, zero point 128: raw pixels already are the quantized [-1, 1] values
    assert quantize_input(pixels, np.uint8, 1 / 128, 128).tolist() == [[[[0, 128, 255]]]]
    # float input: normalised to [-1, 1]
    f = quantize_input(pixels, np.float32, 0.0, 0)
    assert f.min() == pytest.approx(-1.0) and f.max() == pytest.approx(1.0)
    # int8 with another scale: requantized
    q = quantize_input(pixels, np.int8, 2 / 255, 0)
    assert q.tolist() == [[[[-127, 0, 127]]]]


def test_the_interpreter_package_can_be_chosen(monkeypatch):
    from edgeknn.errors import InterpreterMissing
    from edgeknn.vision.runtime import interpreter_package

    monkeypatch.setenv("EDGEKNN_INTERPRETER", "ai-edge-litert")
    assert interpreter_package().name == "ai-edge-litert"
    monkeypatch.setenv("EDGEKNN_INTERPRETER", "tensorflow")
    with pytest.raises(InterpreterMissing, match="EDGEKNN_INTERPRETER"):
        interpreter_package()
