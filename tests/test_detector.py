"""The SSD detector: output identification, decoding, and the real pet detector on real photos."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from conftest import IMAGES, MODELS
from PIL import Image

from edgeknn.cli import main
from edgeknn.config import DetectorConfig
from edgeknn.errors import DetectorError
from edgeknn.images import crop_for, load_image
from edgeknn.results import Box
from edgeknn.vision.detector import (
    Detector,
    OutputLayout,
    PostProcessOptions,
    classes_first_by_content,
    detections_from_outputs,
    identify_outputs,
    input_array,
    open_detector,
)
from edgeknn.vision.labelmap import parse_labels, read_labels
from edgeknn.vision.runtime import OpenedModel

PET_MODEL = MODELS / "ssd_mobilenet_v1_pets_quant_postprocess.tflite"
PET_LABELS = MODELS / "pets_labels.txt"
# dog_train_0 scores 0.50 exactly with a bilinear resize; other resizes give a
# few hundredths less, so its tests use 0.45 (see data/images/README.md).
PETS = {
    "cat.bmp": 0.5, "pets.jpg": 0.5, "imprinting/cat_train_0.bmp": 0.5,
    "imprinting/cat_test_0.bmp": 0.5, "imprinting/dog_test_0.bmp": 0.5,
    "imprinting/dog_train_0.bmp": 0.45,
}
NO_PETS = ["parrot.jpg", "grace_hopper.bmp", "owl.jpg", "hot_dog.jpg"]


def out(name, index, shape):
    return {"name": name, "index": index, "shape": np.array(shape, np.int32)}


# ----------------------------------------------------------------- telling outputs apart

def test_tf1_outputs_are_told_apart_by_postprocess_suffix():
    details = [out("TFLite_Detection_PostProcess", 10, [1, 10, 4]),
               out("TFLite_Detection_PostProcess:1", 11, [1, 10]),
               out("TFLite_Detection_PostProcess:2", 12, [1, 10]),
               out("TFLite_Detection_PostProcess:3", 13, [1])]
    assert identify_outputs(details) == OutputLayout(boxes=10, classes=11, scores=12, count=13)


def test_tf2_outputs_in_their_shuffled_order_are_told_apart():
    # The order a TF2 Object Detection API export lists: scores, boxes, count, classes.
    details = [out("StatefulPartitionedCall:1", 5, [1, 25]),
               out("StatefulPartitionedCall:3", 3, [1, 25, 4]),
               out("StatefulPartitionedCall:0", 6, [1]),
               out("StatefulPartitionedCall:2", 4, [1, 25])]
    assert identify_outputs(details) == OutputLayout(boxes=3, classes=4, scores=5, count=6)


def test_descriptive_names_tell_classes_from_scores():
    details = [out("detection_scores", 1, [1, 10]), out("detection_boxes", 2, [1, 10, 4]),
               out("detection_classes", 3, [1, 10]), out("num_detections", 4, [1])]
    assert identify_outputs(details) == OutputLayout(boxes=2, classes=3, scores=1, count=4)


def test_the_ops_own_output_list_overrides_names():
    details = [out("a", 7, [1, 10, 4]), out("b", 8, [1, 10]), out("c", 9, [1, 10]),
               out("d", 6, [1])]
    layout = identify_outputs(details, op_outputs=[7, 9, 8, 6])
    assert layout == OutputLayout(boxes=7, classes=9, scores=8, count=6)


def test_unhelpful_names_leave_classes_and_scores_to_content():
    details = [out("a", 7, [1, 10, 4]), out("b", 8, [1, 10]), out("c", 9, [1, 10]),
               out("d", 6, [1])]
    assert identify_outputs(details).classes_scores_unsure


def test_a_detector_of_one_detection_is_not_confused_by_one_element_outputs():
    details = [out("TFLite_Detection_PostProcess", 0, [1, 1, 4]),
               out("TFLite_Detection_PostProcess:1", 1, [1, 1]),
               out("TFLite_Detection_PostProcess:2", 2, [1, 1]),
               out("TFLite_Detection_PostProcess:3", 3, [1])]
    assert identify_outputs(details) == OutputLayout(boxes=0, classes=1, scores=2, count=3)


def test_a_classifier_is_not_a_detector():
    with pytest.raises(DetectorError, match=r"tiny.tflite is not an SSD detector.*logits \[1, 1001\]"):
        identify_outputs([out("logits", 0, [1, 1001])], "tiny.tflite")


def test_outputs_of_mismatched_length_are_refused():
    details = [out("a", 1, [1, 10, 4]), out("b", 2, [1, 5]), out("c", 3, [1, 10]),
               out("d", 4, [1])]
    with pytest.raises(DetectorError, match=r"must both be \[1,10\]"):
        identify_outputs(details, "odd.tflite")


def test_content_tells_whole_class_ids_from_sorted_scores():
    classes, scores = np.array([3.0, 11.0, 0.0]), np.array([0.9, 0.5, 0.2])
    assert classes_first_by_content(classes, scores) is True
    assert classes_first_by_content(scores, classes) is False
    assert classes_first_by_content(np.zeros(3), np.zeros(3)) is None


# ----------------------------------------------------------------- decoding raw outputs

LABELS = parse_labels("???\ncat\ndog\n")


def decode(boxes, classes, scores, crop=None, **options):
    crop = crop or crop_for(400, 200, 300, 300, "squash")
    return detections_from_outputs(
        np.array(boxes, np.float32), np.array(classes, np.float32), np.array(scores, np.float32),
        len(scores), crop, lambda c: LABELS.name(c) or f"id:{c}", **options,
    )


def test_scores_below_the_threshold_are_dropped_and_the_rest_sorted():
    found = decode([[0, 0, .5, .5], [.5, .5, 1, 1], [0, 0, 1, 1]], [0, 1, 0], [.6, .9, .3],
                   threshold=0.5)
    assert [(d.label, d.score) for d in found] == [("dog", pytest.approx(.9)),
                                                  ("cat", pytest.approx(.6))]


def test_boxes_come_out_in_frame_coordinates_and_pixels():
    (d,) = decode([[0.25, 0.5, 0.75, 1.0]], [0], [0.8])
    assert d.box == Box(0.5, 0.25, 1.0, 0.75)
    assert d.box_px == (200, 50, 400, 150)


def test_allow_list_and_max_detections_limit_what_is_returned():
    boxes = [[0, 0, .5, .5]] * 3
    assert [d.label for d in decode(boxes, [0, 1, 0], [.9, .8, .7], allow={"cat"})] == ["cat"] * 2
    assert len(decode(boxes, [0, 1, 0], [.9, .8, .7], max_detections=1)) == 1


def test_boxes_wholly_outside_the_frame_are_dropped():
    assert decode([[0, 1.1, 0.5, 1.4]], [0], [0.9]) == []


def test_count_limits_the_entries_read():
    found = detections_from_outputs(
        np.zeros((3, 4)) + [0, 0, .5, .5], np.zeros(3), np.array([.9, .8, .7]), 1,
        crop_for(10, 10, 10, 10, "squash"), lambda c: "cat",
    )
    assert len(found) == 1


def test_uint8_input_takes_raw_pixels_int8_shifted_float_normalised():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    assert input_array(pixels, np.uint8) is pixels
    assert input_array(pixels, np.int8).tolist() == [[[-128, 0, 127]]]
    assert input_array(pixels, np.float32) == pytest.approx(np.array([[[-1, 0.5 / 127.5, 1]]]))


# ----------------------------------------------------------------- the real pet detector

@pytest.fixture(scope="module")
def detector() -> Detector:
    return open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu", threshold=0.45))


def direct_run(image: Image.Image):
    """The model run by hand: bilinear resize to 300x300, raw uint8 in, TF1 outputs out."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(PET_MODEL))
    interp.allocate_tensors()
    pixels = np.asarray(image.convert("RGB").resize((300, 300), Image.BILINEAR), np.uint8)
    interp.set_tensor(interp.get_input_details()[0]["index"], pixels[None])
    interp.invoke()
    boxes, classes, scores, count = (interp.get_tensor(d["index"])
                                     for d in interp.get_output_details())
    ymin, xmin, ymax, xmax = boxes[0, 0]
    w, h = image.size
    return int(classes[0, 0]), float(scores[0, 0]), (xmin * w, ymin * h, xmax * w, ymax * h)


def pixel_iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_cat_is_found_as_an_egyptian_mau(detector):
    (d,) = detector.detect(load_image(IMAGES / "cat.bmp"))
    assert d.label == "Egyptian_Mau"
    assert d.score == pytest.approx(0.70, abs=0.03)


@pytest.mark.parametrize("name", PETS)
def test_each_pet_is_found_where_a_direct_run_finds_it(detector, name):
    class_id, score, expected = direct_run(Image.open(IMAGES / name))
    found = [d for d in detector.detect(load_image(IMAGES / name)) if d.score >= PETS[name]]
    assert len(found) == 1
    (d,) = found
    assert d.class_id == class_id and d.label == read_labels(PET_LABELS).name(class_id)
    assert d.score == pytest.approx(score, abs=0.02)
    assert pixel_iou(d.box_px, expected) >= 0.9


@pytest.mark.parametrize("name", NO_PETS)
def test_nothing_is_found_in_photos_without_pets(name):
    detector = open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu"))  # threshold 0.5
    assert detector.detect(load_image(IMAGES / name)) == []


def test_bird_is_mistaken_for_a_sphynx_which_an_allow_list_removes():
    frame = load_image(IMAGES / "bird.bmp")
    everything = open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu"))
    assert [(d.label, round(d.score, 1)) for d in everything.detect(frame)] == [("Sphynx", 0.6)]
    no_sphynx = read_labels(PET_LABELS).labels - {"Sphynx"}
    allowed = open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu", allow=tuple(sorted(no_sphynx))))
    assert allowed.detect(frame) == []


def test_center_crop_maps_boxes_back_to_the_uncropped_frame(detector):
    # A square of cat.bmp holding the cat, padded left and right: center-crop
    # feeds the model just that square, so the box must land on the direct
    # run's box for the square, shifted by the padding.
    square = Image.open(IMAGES / "cat.bmp").convert("RGB").crop((171, 0, 512, 341))
    class_id, _, (x0, y0, x1, y1) = direct_run(square)
    padded = Image.new("RGB", (341 + 200, 341), (128, 128, 128))
    padded.paste(square, (100, 0))
    cropping = open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu", resize="center-crop"))
    d = cropping.detect(np.asarray(padded))[0]
    assert d.class_id == class_id
    assert pixel_iou(d.box_px, (x0 + 100, y0, x1 + 100, y1)) >= 0.9


def test_a_classifier_opened_as_detector_fails_at_load():
    tiny = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
    with pytest.raises(DetectorError, match="mobilenet_v1_0.25_128_quant.tflite is not an SSD"):
        open_detector(tiny, PET_LABELS, DetectorConfig(accelerator="cpu"))


def test_a_label_file_shorter_than_the_models_classes_fails_at_load(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("???\n" + "\n".join(f"breed{k}" for k in range(10)) + "\n")
    with pytest.raises(DetectorError, match=r"up to 9, but .* reports 37 classes"):
        open_detector(PET_MODEL, short, DetectorConfig(accelerator="cpu"))


def test_an_allowed_label_not_in_the_label_file_fails_at_load_with_a_suggestion():
    with pytest.raises(DetectorError, match="did you mean 'Sphynx'"):
        open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu", allow=("sphinx",)))


def test_a_class_id_missing_from_a_label_file_with_gaps_is_reported_as_its_id(tmp_path, caplog):
    labels = read_labels(PET_LABELS)
    gappy = tmp_path / "gappy.txt"
    gappy.write_text("".join(f"{i} {n}\n" for i, n in labels.names.items() if i != 11))
    detector = open_detector(PET_MODEL, gappy, DetectorConfig(accelerator="cpu"))
    frame = load_image(IMAGES / "cat.bmp")
    with caplog.at_level(logging.WARNING, logger="edgeknn.vision.detector"):
        assert [d.label for d in detector.detect(frame)] == ["id:11"]
        detector.detect(frame)
    assert len([r for r in caplog.records if "class id 11" in r.message]) == 1


# ----------------------------------------------------------------- edgeknn detect

def test_detect_command_prints_json_per_image(capsys):
    assert main(["detect", str(IMAGES / "cat.bmp"), str(IMAGES / "owl.jpg"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cat, owl = report["images"]
    assert [o["label"] for o in cat["objects"]] == ["Egyptian_Mau"]
    assert cat["objects"][0]["class_id"] == 11
    assert (cat["width"], cat["height"]) == (512, 341)
    assert owl["objects"] == []


def test_detect_command_allow_list_and_threshold(capsys):
    assert main(["detect", str(IMAGES / "bird.bmp"), "--allow", "Abyssinian"]) == 0
    assert "nothing scored 0.50 or more" in capsys.readouterr().out
    assert main(["detect", str(IMAGES / "imprinting/dog_train_0.bmp"), "--threshold", "0.45"]) == 0
    assert "great_pyrenees" in capsys.readouterr().out


def test_detect_command_reports_an_unknown_label_as_an_error(capsys):
    assert main(["detect", str(IMAGES / "bird.bmp"), "--allow", "Unicorn"]) == 2
    assert "edgeknn: error: allowed label(s) 'Unicorn'" in capsys.readouterr().err


def test_a_label_file_one_longer_than_the_classes_warns_of_an_unmarked_background(
    tmp_path, caplog
):
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("nothing\n" + "\n".join(read_labels(PET_LABELS).names.values()) + "\n")
    with caplog.at_level(logging.WARNING, logger="edgeknn.vision.detector"):
        open_detector(PET_MODEL, shifted, DetectorConfig(accelerator="cpu"))
    assert "write it as ???" in caplog.text


class UnnamedOutputs:
    """The real interpreter, its outputs listed nameless with scores before classes."""

    def __init__(self, interpreter):
        self._interpreter = interpreter

    def get_output_details(self):
        boxes, classes, scores, count = self._interpreter.get_output_details()
        return [{**d, "name": f"out{k}"} for k, d in enumerate([boxes, scores, classes, count])]

    def __getattr__(self, name):
        return getattr(self._interpreter, name)


def test_classes_and_scores_with_useless_names_are_sorted_out_by_content():
    real = open_detector(PET_MODEL, PET_LABELS, DetectorConfig(accelerator="cpu")).opened
    opened = OpenedModel(UnnamedOutputs(real.interpreter), "cpu", real.path)
    unknown_graph = PostProcessOptions(num_classes=37, max_detections=10, outputs=())
    detector = Detector(opened, read_labels(PET_LABELS), DetectorConfig(), postprocess=unknown_graph)
    assert detector.layout.classes_scores_unsure
    assert [d.label for d in detector.detect(load_image(IMAGES / "cat.bmp"))] == ["Egyptian_Mau"]
    assert not detector.layout.classes_scores_unsure
