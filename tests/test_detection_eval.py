"""COCO-style detection metrics: hand-computed cases, and agreement with pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATASETS, IMAGES, MODELS

from edgeknn.cli import main
from edgeknn.cli.detect import detect_annotated
from edgeknn.config import DetectorConfig, ModelsConfig
from edgeknn.errors import AnnotationError, DetectorError
from edgeknn.tools.annotations import (
    AnnotatedImage,
    AnnotatedObject,
    load_annotations,
    parse_csv,
    parse_voc,
    with_size,
)
from edgeknn.tools.detection_eval import (
    AGNOSTIC,
    GroundTruthBox,
    ScoredBox,
    evaluate,
    match_labels,
    parse_class_map,
)
from edgeknn.vision.engines import detector_from_config


def gt(image, box, label="cat", ignore=False):
    return GroundTruthBox(image, label, tuple(float(v) for v in box), ignore)


def det(image, score, box, label="cat"):
    return ScoredBox(image, label, score, tuple(float(v) for v in box))


A, B = (0, 0, 10, 10), (20, 20, 30, 30)
FAR = (50, 50, 60, 60)
B_064 = (20, 20, 30, 26.4)  # IoU with B: 64 / 100 = 0.64


def test_two_objects_three_detections_hand_computed():
    # Ranked: TP (IoU 1), FP, then B found at IoU 0.64: a hit at thresholds
    # 0.50, 0.55, 0.60 and a miss at the seven above.
    # At a hit: recall .5, .5, 1 with monotone precision 1, 2/3, 2/3, so the
    # 101-point AP is (51 * 1 + 50 * 2/3) / 101 = 253/303.
    # At a miss: recall stops at .5, so AP is 51/101.
    m = evaluate(["img"], [gt("img", A), gt("img", B)],
                 [det("img", 0.9, A), det("img", 0.8, FAR), det("img", 0.7, B_064)])
    assert m.ap50 == pytest.approx(253 / 303)
    assert m.ap75 == pytest.approx(51 / 101)
    assert m.ap == pytest.approx((3 * 253 / 303 + 7 * 51 / 101) / 10)  # = 61/101
    assert m.ar1 == pytest.approx(0.5)
    assert m.ar10 == pytest.approx((3 * 1.0 + 7 * 0.5) / 10)
    assert m.ar100 == m.ar10


def test_perfect_detections_score_one():
    m = evaluate([1, 2], [gt(1, A), gt(2, B)], [det(1, 0.6, A), det(2, 0.9, B)])
    assert [m.ap, m.ap50, m.ap75, m.ar1, m.ar10, m.ar100] == pytest.approx([1.0] * 6)


def test_false_positive_on_an_image_without_objects_lowers_precision():
    # The stray detection outranks the true one: precision 0 then 1/2 at recall 1.
    m = evaluate([1, 2], [gt(1, A)], [det(2, 0.9, A), det(1, 0.5, A)])
    assert m.ap == pytest.approx(0.5)
    assert m.ar100 == 1.0


def test_each_object_matches_at_most_one_detection():
    # Two detections on one object: the second is a false positive.
    m = evaluate([1], [gt(1, A)], [det(1, 0.9, A), det(1, 0.8, A)])
    assert m.ap == pytest.approx(1.0)  # found before the duplicate, so precision is 1 at full recall
    m = evaluate([1], [gt(1, A)], [det(1, 0.9, FAR), det(1, 0.8, A)])
    assert m.ap == pytest.approx(0.5)


def test_detection_of_an_ignored_object_is_neither_hit_nor_miss():
    m = evaluate([1], [gt(1, A), gt(1, B, ignore=True)], [det(1, 0.9, B), det(1, 0.8, A)])
    assert m.ap == pytest.approx(1.0)
    assert m.ground_truths == 1


def test_classes_without_ground_truth_are_left_out():
    m = evaluate([1], [gt(1, A, "cat")], [det(1, 0.9, A, "cat"), det(1, 0.95, A, "dog")])
    assert m.ap == pytest.approx(1.0)
    assert [c.label for c in m.per_class] == ["cat"]
    assert m.ignored_detections == 1


def test_metrics_are_none_without_ground_truth():
    m = evaluate([1], [], [det(1, 0.9, A)])
    assert m.ap is None and m.ar100 is None and m.per_class == ()


def test_missed_class_has_zero_ap():
    m = evaluate([1], [gt(1, A, "cat"), gt(1, B, "dog")], [det(1, 0.9, A, "cat")])
    by_label = {c.label: c for c in m.per_class}
    assert by_label["cat"].ap == pytest.approx(1.0) and by_label["dog"].ap == 0.0
    assert m.ap == pytest.approx(0.5)


def test_box_on_an_unknown_image_is_refused():
    with pytest.raises(ValueError, match="not among the evaluated images"):
        evaluate([1], [gt(2, A)], [])


def _random_case(seed: int):
    """Ground truth and detections with jitter, duplicates, misses and strays."""
    rng = np.random.default_rng(seed)
    labels = ["apple", "banana", "orange"]
    images = list(range(1, 16))
    truth, found = [], []

    def jitter(box, amount):
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        d = rng.normal(0, amount, 4) * [w, h, w, h]
        nx0, ny0 = x0 + d[0], y0 + d[1]
        return (nx0, ny0, max(nx0 + 1, x1 + d[2]), max(ny0 + 1, y1 + d[3]))

    def random_box():
        x0, y0 = rng.uniform(0, 400, 2)
        return (x0, y0, x0 + rng.uniform(5, 200), y0 + rng.uniform(5, 200))

    for image in images:
        for label in labels:
            for _ in range(rng.integers(0, 4) if image % 5 else 0):  # some images empty
                box = random_box()
                truth.append(gt(image, box, label))
                for _ in range(rng.integers(0, 3)):  # missed, found, or found twice
                    found.append(det(image, float(rng.uniform()), jitter(box, 0.08), label))
            strays = 15 if image == 3 else int(rng.integers(0, 3))  # image 3: over 10 per class
            for _ in range(strays):
                found.append(det(image, float(rng.uniform()), random_box(), label))
    # Over 100 detections of one class in one image: the lowest-scored, a hit,
    # falls beyond the 100 that COCO keeps.
    for _ in range(110):
        found.append(det(7, float(rng.uniform(0.5, 1.0)), random_box(), "apple"))
    truth.append(gt(7, (500, 500, 600, 600), "apple"))
    found.append(det(7, 0.01, (500, 500, 600, 600), "apple"))
    return images, labels, truth, found


COCO_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")


def _coco_summary(stats) -> list[float]:
    """COCOeval.stats in the order of COCO_KEYS (all areas; AR at 1, 10, 100 detections)."""
    return [float(stats[k]) for k in (0, 1, 2, 6, 7, 8)]


def _pycocotools(images, labels, truth, found):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    cat_id = {label: k + 1 for k, label in enumerate(labels)}
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": i} for i in images],
        "categories": [{"id": cat_id[label], "name": label} for label in labels],
        "annotations": [
            {"id": k + 1, "image_id": g.image, "category_id": cat_id[g.label],
             "bbox": xywh(g.box), "area": xywh(g.box)[2] * xywh(g.box)[3], "iscrowd": 0}
            for k, g in enumerate(truth)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([
            {"image_id": d.image, "category_id": cat_id[d.label], "bbox": xywh(d.box),
             "score": d.score}
            for d in found
        ])
        e = COCOeval(coco_gt, coco_dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    per_class = {}
    for k, label in enumerate(labels):
        p = e.eval["precision"][:, :, k, 0, -1]
        per_class[label] = float(np.mean(p[p > -1]))
    return e.stats, per_class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pycocotools(seed):
    images, labels, truth, found = _random_case(seed)
    stats, per_class = _pycocotools(images, labels, truth, found)
    m = evaluate(images, truth, found)
    ours = [m.ap, m.ap50, m.ap75, m.ar1, m.ar10, m.ar100]
    theirs = _coco_summary(stats)
    assert 0.05 < m.ap < 0.95  # a case where the numbers mean something
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert {c.label: c.ap for c in m.per_class} == pytest.approx(per_class, abs=1e-9)


# ----------------------------------------------------------------- class names

def test_annotation_classes_match_detector_labels_ignoring_case_and_underscores():
    match, unmatched = match_labels(["Egyptian_Mau", "Sphynx"], ["egyptian mau", "Raccoon"])
    assert match.detections == {"Egyptian_Mau": "egyptian mau"}
    assert unmatched == ["Raccoon"]


def test_class_map_counts_a_label_as_another_class():
    match, unmatched = match_labels(["Bengal", "Sphynx"], ["cat"], parse_class_map(["Bengal=cat"]))
    assert match.detections == {"Bengal": "cat"} and unmatched == []


def test_class_agnostic_makes_every_label_one_class():
    match, _ = match_labels(["Bengal", "Sphynx"], ["raccoon", "dog"], class_agnostic=True)
    assert set(match.detections.values()) == set(match.classes.values()) == {"object"}


def test_class_map_naming_an_unknown_label_or_class_is_an_error():
    with pytest.raises(DetectorError, match="'Unicorn', not label"):
        match_labels(["Bengal"], ["cat"], {"Unicorn": "cat"})
    with pytest.raises(AnnotationError, match="no class 'dog'"):
        match_labels(["Bengal"], ["cat"], {"Bengal": "dog"})
    with pytest.raises(AnnotationError, match="expected DETECTOR_LABEL=CLASS"):
        parse_class_map(["Bengal"])


# ----------------------------------------------------------------- annotation files

VOC = """<annotation><filename>{name}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>{label}</name><difficult>0</difficult>
<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


def test_voc_xml_gives_file_size_and_boxes():
    name, w, h, objects = parse_voc(VOC.format(name="a.jpg", w=640, h=480, label="raccoon",
                                               x0=81, y0=88, x1=522, y1=408))
    assert (name, w, h) == ("a.jpg", 640, 480)
    assert objects == (AnnotatedObject("raccoon", (81.0, 88.0, 522.0, 408.0)),)


def test_voc_size_of_zero_means_unknown_and_is_read_from_the_image():
    _, w, h, objects = parse_voc(VOC.format(name="a.jpg", w=0, h=0, label="apple",
                                            x0=8, y0=15, x1=331, y1=349))
    assert (w, h) == (None, None)
    item = with_size(AnnotatedImage(Path("a.jpg"), w, h, objects), 400, 360)
    assert (item.width, item.height) == (400, 360)


def test_a_stated_size_that_differs_from_the_image_is_an_error():
    item = AnnotatedImage(Path("a.jpg"), 640, 480, (), "a.xml")
    with pytest.raises(AnnotationError, match="a.xml: says the image is 640x480.*is 320x240"):
        with_size(item, 320, 240)


def test_box_without_area_is_an_error_naming_the_file():
    with pytest.raises(AnnotationError, match="bad.xml: box of 'apple'"):
        parse_voc(VOC.format(name="a.jpg", w=0, h=0, label="apple", x0=50, y0=15, x1=10, y1=349),
                  "bad.xml")


def test_csv_without_the_expected_header_is_an_error():
    with pytest.raises(AnnotationError, match="header lacks class"):
        parse_csv("filename,width,height,label,xmin,ymin,xmax,ymax\n", "boxes.csv")


def test_annotations_naming_missing_images_fail_listing_the_first_few(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "ann").mkdir()
    for k in range(7):
        (tmp_path / "ann" / f"x{k}.xml").write_text(
            VOC.format(name=f"x{k}.jpg", w=10, h=10, label="cat", x0=1, y0=1, x1=5, y1=5))
    with pytest.raises(AnnotationError, match=r"7 annotated image\(s\) not found.*x0.jpg.* and 2 more"):
        load_annotations(tmp_path / "ann", tmp_path / "images")


def test_csv_annotations_naming_missing_images_fail(tmp_path):
    (tmp_path / "boxes.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\ngone.jpg,10,10,cat,1,1,5,5\n")
    with pytest.raises(AnnotationError, match="gone.jpg"):
        load_annotations(tmp_path / "boxes.csv", tmp_path)


def test_real_fruit_annotations_load_with_unknown_sizes():
    items = load_annotations(DATASETS / "fruit_detection" / "annotations",
                             DATASETS / "fruit_detection" / "images")
    assert len(items) == 300
    assert sum(len(i.objects) for i in items) == 582
    assert sum(i.width is None for i in items) == 34


# ----------------------------------------------------------------- edgeknn eval-detector

PET_PHOTOS = ["cat.bmp", "pets.jpg", "cat_train_0.bmp", "cat_test_0.bmp", "dog_test_0.bmp",
              "dog_train_0.bmp"]


@pytest.fixture(scope="module")
def pet_set(tmp_path_factory):
    """The six pet photos, annotated with the boxes a direct run of the detector finds."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    root = tmp_path_factory.mktemp("pets")
    (root / "images").mkdir()
    (root / "voc").mkdir()
    labels = (MODELS / "pets_labels.txt").read_text().splitlines()[1:]
    interp = Interpreter(model_path=str(MODELS / "ssd_mobilenet_v1_pets_quant_postprocess.tflite"))
    interp.allocate_tensors()
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    for name in PET_PHOTOS:
        source = IMAGES / name if (IMAGES / name).exists() else IMAGES / "imprinting" / name
        image = Image.open(source).convert("RGB")
        image.save(root / "images" / Path(name).with_suffix(".png").name)
        pixels = np.asarray(image.resize((300, 300), Image.BILINEAR), np.uint8)
        interp.set_tensor(interp.get_input_details()[0]["index"], pixels[None])
        interp.invoke()
        boxes, classes = (interp.get_tensor(d["index"]) for d in interp.get_output_details()[:2])
        w, h = image.size
        ymin, xmin, ymax, xmax = boxes[0, 0]
        box = [round(float(v), 1) for v in (xmin * w, ymin * h, xmax * w, ymax * h)]
        label = labels[int(classes[0, 0])].lower()  # spelled unlike the label file on purpose
        png = Path(name).with_suffix(".png").name
        (root / "voc" / Path(name).with_suffix(".xml").name).write_text(VOC.format(
            name=png, w=w, h=h, label=label, x0=box[0], y0=box[1], x1=box[2], y1=box[3]))
        rows.append(f"{png},{w},{h},{label},{box[0]},{box[1]},{box[2]},{box[3]}")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("annotations", ["voc", "boxes.csv"])
def test_eval_detector_scores_the_detectors_own_boxes_perfectly_at_iou_half(
    pet_set, annotations, capsys
):
    args = ["eval-detector", str(pet_set / "images"), str(pet_set / annotations), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 6 and report["ground_truths"] == 6
    assert report["AP50"] == pytest.approx(1.0)
    assert report["AR100"] == pytest.approx(1.0)
    assert {c["label"] for c in report["per_class"]} >= {"egyptian_mau", "great_pyrenees"}
    assert report["unmatched_classes"] == []


def test_eval_detector_prints_a_table(pet_set, capsys):
    assert main(["eval-detector", str(pet_set / "images"), str(pet_set / "voc")]) == 0
    text = capsys.readouterr().out
    assert "AP @.50        1.000" in text
    assert "egyptian_mau" in text


def test_eval_detector_fails_on_annotations_naming_missing_images(pet_set, tmp_path, capsys):
    assert main(["eval-detector", str(tmp_path), str(pet_set / "voc")]) == 2
    assert "6 annotated image(s) not found" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_detector_runs_on_the_raccoon_set_class_agnostic(capsys):
    raccoon = DATASETS / "raccoon"
    args = ["eval-detector", str(raccoon / "images"), str(raccoon / "annotations"),
            "--class-agnostic", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 200 and report["ground_truths"] == 217
    for key in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
        assert 0.0 <= report[key] <= 1.0
    assert report["AR1"] <= report["AR10"] <= report["AR100"]
    assert report["AP50"] > 0  # a pet-head detector still boxes some raccoon faces


@pytest.mark.slow
def test_eval_detector_agrees_with_pycocotools_on_real_raccoon_detections(capsys, tmp_path):
    # The pet-head detector on raccoons at a low threshold: many misses, strays and
    # tied (quantised) scores, so ranking, matching and ties all count.
    raccoon = DATASETS / "raccoon"
    items = load_annotations(raccoon / "annotations", raccoon / "images")
    # as eval-detector builds it
    detector = detector_from_config(DetectorConfig(threshold=0.05, max_detections=100),
                                    ModelsConfig(dir=tmp_path, mirror=str(MODELS)))
    match, _ = match_labels(sorted(detector.labels.labels),
                            [o.label for item in items for o in item.objects], class_agnostic=True)
    truth, found = detect_annotated(detector, items, match)
    # pycocotools ignores only crowd boxes, with another IoU: compare on sets without `difficult`.
    assert not any(g.ignore for g in truth)
    images = range(len(items))
    stats, _ = _pycocotools(images, [AGNOSTIC], truth, found)
    theirs = _coco_summary(stats)

    m = evaluate(images, truth, found)
    assert 0.05 < m.ap50 < 0.95 and len(found) > 3 * len(truth)  # numbers that mean something
    assert [m.ap, m.ap50, m.ap75, m.ar1, m.ar10, m.ar100] == pytest.approx(theirs, abs=1e-6)

    # The command reports the same numbers for the same detections.
    args = ["eval-detector", str(raccoon / "images"), str(raccoon / "annotations"),
            "--class-agnostic", "--threshold", "0.05", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ground_truths"], report["detections"]) == (len(truth), len(found))
    assert [report[key] for key in COCO_KEYS] == pytest.approx(theirs, abs=1e-6)
