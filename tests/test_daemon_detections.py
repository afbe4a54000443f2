"""Detections over MQTT end to end: the real pet detector beside the embedder."""

from __future__ import annotations

import base64
import json
import time

from conftest import IMAGES, ScriptedCamera, wait_until
from PIL import Image
from test_daemon import command, reply_to
from test_detector import direct_run, pixel_iou

DETECTIONS = "edgeknn/testpi/detections"
DETECTOR = {"enabled": True, "threshold": 0.45, "classify_objects": True}


def photo(path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def detections(listener):
    return [m.json() for m in listener.on(DETECTIONS)]


def test_boxes_are_published_in_frame_coordinates_and_stop_with_one_empty_list(running, listen):
    watch = listen("edgeknn/testpi/#")
    camera = ScriptedCamera([IMAGES / "cat.bmp"], [IMAGES / "parrot.jpg"])
    running(camera, detector=DETECTOR)
    wait_until(lambda: len(detections(watch)) >= 2, what="detections of the cat")
    message = detections(watch)[-1]
    width, height = photo(IMAGES / "cat.bmp").size
    assert message["image"] == {"width": width, "height": height}
    [cat] = message["objects"]
    assert cat["label"] == "Egyptian_Mau" and cat["score"] >= 0.45
    assert "class" not in cat  # nothing taught yet
    _, _, expected = direct_run(photo(IMAGES / "cat.bmp"))
    assert pixel_iou(cat["box_px"], expected) >= 0.9
    box = cat["box"]
    normalised = (box["xmin"] * width, box["ymin"] * height, box["xmax"] * width, box["ymax"] * height)
    assert pixel_iou(normalised, expected) >= 0.9

    camera.switch()  # a parrot: no pets
    wait_until(lambda: detections(watch)[-1]["objects"] == [], what="the empty list once pets are gone")
    time.sleep(1.0)
    empties = [m for m in detections(watch) if not m["objects"]]
    assert len(empties) == 1


def test_taught_on_detected_crops_the_knn_names_each_pet(running, listen):
    watch = listen("edgeknn/testpi/#")
    camera = ScriptedCamera([IMAGES / "imprinting" / "cat_test_0.bmp"], [IMAGES / "imprinting" / "dog_test_0.bmp"])
    running(camera, detector=DETECTOR)
    watch.wait_for("edgeknn/testpi/status", b"online")
    for request, label, photo in (("t1", "whiskers", "cat_train_0.bmp"), ("t2", "rex", "dog_train_0.bmp")):
        image = base64.b64encode((IMAGES / "imprinting" / photo).read_bytes()).decode()
        command(watch, "add", {"id": request, "label": label, "image": image, "target": "largest_object"})
        assert reply_to(watch, request)["ok"] is True
    wait_until(lambda: any("class" in o for m in detections(watch) for o in m["objects"]),
               what="a classified detection")
    [cat] = detections(watch)[-1]["objects"]
    assert cat["class"]["label"] == "whiskers"
    camera.switch()
    wait_until(lambda: any(o.get("class", {}).get("label") == "rex"
                           for m in detections(watch)[-3:] for o in m["objects"]),
               what="the dog named rex")


def test_teaching_a_crop_when_nothing_is_detected_is_refused(running, listen):
    watch = listen("edgeknn/testpi/#")
    running(ScriptedCamera([IMAGES / "parrot.jpg"], [IMAGES / "parrot.jpg"]), detector=DETECTOR)
    watch.wait_for("edgeknn/testpi/status", b"online")
    command(watch, "add", {"id": "none", "label": "pet", "target": "largest_object"})
    reply = reply_to(watch, "none")
    assert reply["ok"] is False and "no object" in reply["error"]
    assert json.loads(watch.on("edgeknn/testpi/classes")[-1].payload) == {}
