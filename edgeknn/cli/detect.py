"""`edgeknn detect IMAGE...` and `edgeknn eval-detector IMAGES ANNOTATIONS`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgeknn.cli.common import Progress
from edgeknn.cli.flags import DETECTOR, Flag, add_flags, load_config
from edgeknn.images import load_image
from edgeknn.mqtt.payloads import detection_dict
from edgeknn.vision.detector import Detector
from edgeknn.vision.engines import detector_from_config

if TYPE_CHECKING:  # the tools load only when eval-detector runs, never for `edgeknn run`
    from edgeknn.tools.annotations import AnnotatedImage
    from edgeknn.tools.detection_eval import CocoMetrics, GroundTruthBox, LabelMatch, ScoredBox

DETECT_EPILOG = """examples:
  edgeknn detect photo.jpg
  edgeknn detect *.jpg --threshold 0.4 --allow Abyssinian Bengal --json
  edgeknn detect frame.png --model my_ssd.tflite --labels my_labels.txt

The default model is the manifest's default detector (the Oxford pets SSD,
which finds pet heads), fetched on first use.
"""

EVAL_EPILOG = """examples:
  edgeknn eval-detector raccoon/images raccoon/annotations --class-agnostic
  edgeknn eval-detector fruit/images fruit/annotations --model ssd_coco.tflite \\
      --labels coco_labels.txt --json
  edgeknn eval-detector imgs labels.csv --class-map Abyssinian=cat \\
      --class-map Bengal=cat

ANNOTATIONS is a folder of Pascal VOC .xml files or a CSV file with the header
filename,width,height,class,xmin,ymin,xmax,ymax.  Annotation classes are matched
to detector labels ignoring case and treating '_' as a space; --class-map
DETECTOR_LABEL=CLASS adds or overrides a match; --class-agnostic counts every
detection as every object.  Metrics are COCO's: AP averaged over IoU 0.50:0.95,
AP at 0.50 and 0.75, and AR with at most 1, 10, 100 detections per image.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect", help="find objects in images with the SSD detector",
        description="Run the object detector on image files and print what it finds.",
        epilog=DETECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to look at")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_flags(p, [Flag("--threshold", "detector.threshold"),
                  Flag("--max-detections", "detector.max_detections"),
                  Flag("--allow", "detector.allow", metavar="LABEL")])
    add_detector_args(p)
    p.set_defaults(func=run_detect)

    e = sub.add_parser(
        "eval-detector", help="COCO-style AP/AR of the detector on annotated images",
        description="Measure the detector against Pascal VOC or CSV box annotations.",
        epilog=EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("images", type=Path, help="folder holding the annotated images")
    e.add_argument("annotations", type=Path, help="folder of VOC .xml files, or a .csv file")
    add_flags(e, [Flag("--threshold", "detector.threshold", default=0.0,
                       help="drop detections scoring below this (default 0: keep all, as AP expects)")])
    e.add_argument("--class-map", action="append", default=[], metavar="LABEL=CLASS",
                   help="count detector LABEL as annotation CLASS (repeatable)")
    e.add_argument("--class-agnostic", action="store_true",
                   help="ignore classes: any detection may match any object")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    add_detector_args(e)
    e.set_defaults(func=run_eval_detector)


def add_detector_args(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, DETECTOR, "detector")


def run_detect(args: argparse.Namespace) -> int:
    config = load_config(args)
    threshold = config.detector.threshold
    detector = detector_from_config(config.detector, config.models)
    results = []
    for path in args.images:
        frame = load_image(path)
        height, width = frame.shape[:2]
        results.append((path, width, height, detector.detect(frame)))
    if args.json:
        print(json.dumps({
            "model": detector.opened.path.name,
            "backend": detector.opened.backend,
            "threshold": threshold,
            "images": [
                {"image": str(path), "width": w, "height": h,
                 "objects": [{**detection_dict(d), "class_id": d.class_id} for d in found]}
                for path, w, h, found in results
            ],
        }, ensure_ascii=False))
        return 0
    for path, w, h, found in results:
        what = f"{len(found)} object{'s' if len(found) != 1 else ''}" if found else (
            f"nothing scored {threshold:.2f} or more")
        print(f"{path} ({w}x{h}): {what}")
        for d in found:
            x0, y0, x1, y1 = d.box_px
            print(f"  {d.label:<28} {d.score:.2f}  x {x0}..{x1}  y {y0}..{y1}")
    return 0


def run_eval_detector(args: argparse.Namespace) -> int:
    from edgeknn.tools.annotations import load_annotations
    from edgeknn.tools.detection_eval import evaluate, match_labels, parse_class_map

    items = load_annotations(args.annotations, args.images)
    class_map = parse_class_map(args.class_map)
    config = load_config(args)
    # every label, and as many boxes as COCO's AR@100 counts
    detector = detector_from_config(replace(config.detector, max_detections=100, allow=()), config.models)
    classes = [o.label for item in items for o in item.objects]
    match, unmatched = match_labels(
        sorted(detector.labels.labels), classes, class_map, class_agnostic=args.class_agnostic
    )
    truth, found = detect_annotated(detector, items, match, Progress("detect", len(items)))
    metrics = evaluate(range(len(items)), truth, found)
    if args.json:
        print(json.dumps({
            "model": detector.opened.path.name, "backend": detector.opened.backend,
            "threshold": config.detector.threshold, "class_agnostic": args.class_agnostic,
            "class_map": class_map, "unmatched_classes": unmatched, **metrics.as_dict(),
        }, ensure_ascii=False))
    else:
        print_report(config.detector.threshold, detector, metrics, unmatched)
    return 0


def detect_annotated(
    detector: Detector, items: list[AnnotatedImage], match: LabelMatch, progress: Progress | None = None,
) -> tuple[list[GroundTruthBox], list[ScoredBox]]:
    """Run the detector on every annotated image: ground truth and detections, in pixels,
    with class names matched, each box's image named by its index in ``items``."""
    from edgeknn.tools.annotations import with_size
    from edgeknn.tools.detection_eval import GroundTruthBox, ScoredBox

    truth: list[GroundTruthBox] = []
    found: list[ScoredBox] = []
    for index, item in enumerate(items):
        frame = load_image(item.path)
        height, width = frame.shape[:2]
        item = with_size(item, width, height)
        for obj in item.objects:
            truth.append(GroundTruthBox(index, match.classes[obj.label], obj.box, obj.difficult))
        for d in detector.detect(frame):  # labels matching no class are counted, then left out
            b = d.box
            box = (b.xmin * width, b.ymin * height, b.xmax * width, b.ymax * height)
            found.append(ScoredBox(index, match.detections.get(d.label, d.label), d.score, box))
        if progress is not None:
            progress.update(index + 1)
    return truth, found


def _num(value: float | None) -> str:
    return "    -" if value is None else f"{value:.3f}"


def print_report(threshold: float, detector: Detector, m: CocoMetrics, unmatched: list[str]) -> None:
    print(f"{detector.opened.path.name} ({detector.opened.backend}) on {m.images} images, "
          f"{m.ground_truths} objects, {m.detections} detections at score >= {threshold:g}"
          + (f"; {m.ignored_detections} more left out: their labels match no annotated class"
             if m.ignored_detections else ""))
    for name, value in (("AP @[.50:.95]", m.ap), ("AP @.50", m.ap50), ("AP @.75", m.ap75),
                        ("AR @1", m.ar1), ("AR @10", m.ar10), ("AR @100", m.ar100)):
        print(f"  {name:<14} {_num(value)}")
    width = max([5] + [len(c.label) for c in m.per_class])
    print(f"\n  {'class':<{width}}  objects  detections     AP   AP50   AP75  AR100")
    for c in m.per_class:
        print(f"  {c.label:<{width}}  {c.ground_truths:>7}  {c.detections:>10}  "
              f"{_num(c.ap)}  {_num(c.ap50)}  {_num(c.ap75)}  {_num(c.ar100)}")
    for name in unmatched:
        print(f"note: no detector label matches class {name!r}, so its AP is 0; "
              "use --class-map LABEL=CLASS or --class-agnostic")
