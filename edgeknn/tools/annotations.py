"""Detection annotations: Pascal VOC XML folders and CSV files.

Both give, per image, the objects in it as a class name and a pixel box
``(x0, y0, x1, y1)``.  CSV files have the header
``filename,width,height,class,xmin,ymin,xmax,ymax`` (the layout of the
TF Object Detection API tutorials); one row per object.

Image sizes are taken from the annotation when it gives them; some real sets
write ``0`` (or nothing), so the size stays unknown until the image itself is
read (:func:`with_size`).  Loading checks that every image named exists and
fails with :class:`AnnotationError` listing the first few that do not.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

from edgeknn.errors import AnnotationError
from edgeknn.images import IMAGE_SUFFIXES

CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
SHOW_MISSING = 5


@dataclass(frozen=True)
class AnnotatedObject:
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    difficult: bool = False


@dataclass(frozen=True)
class AnnotatedImage:
    path: Path
    width: int | None  # None: the annotation does not say (read it from the image)
    height: int | None
    objects: tuple[AnnotatedObject, ...]
    source: str = ""  # the annotation file (and row) it came from, for messages


def _number(text: str | None, what: str, source: str) -> float:
    try:
        return float((text or "").strip())
    except ValueError:
        raise AnnotationError(f"{source}: {what} {text!r} is not a number") from None


def _size(value: float) -> int | None:
    return int(value) if value > 0 else None


def _object(label: str, coords: list[float], source: str, difficult: bool = False) -> AnnotatedObject:
    x0, y0, x1, y1 = coords
    if not label.strip():
        raise AnnotationError(f"{source}: an object has no class name")
    if not (x1 > x0 and y1 > y0):
        raise AnnotationError(
            f"{source}: box of {label!r} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area; "
            "expected xmin < xmax and ymin < ymax"
        )
    return AnnotatedObject(label.strip(), (x0, y0, x1, y1), difficult)


def parse_voc(text: str | bytes, source: str = "annotation") -> tuple[str, int | None, int | None,
                                                                     tuple[AnnotatedObject, ...]]:
    """Parse one Pascal VOC XML document: (filename, width, height, objects)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise AnnotationError(f"{source}: not well-formed XML ({exc})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{source}: root element is <{root.tag}>, not <annotation>")
    filename = (root.findtext("filename") or "").strip()
    width = _size(_number(root.findtext("size/width") or "0", "width", source))
    height = _size(_number(root.findtext("size/height") or "0", "height", source))
    objects = []
    for obj in root.iter("object"):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError(f"{source}: an <object> has no <bndbox>")
        coords = [_number(bnd.findtext(k), k, source) for k in ("xmin", "ymin", "xmax", "ymax")]
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(_object(obj.findtext("name") or "", coords, source, difficult))
    return filename, width, height, tuple(objects)


def _find_image(images: Path, filename: str, stem: str) -> Path | None:
    if filename and (images / filename).is_file():
        return images / filename
    for suffix in sorted(IMAGE_SUFFIXES):  # <filename> missing or stale: try the XML's stem
        for candidate in (images / (stem + suffix), images / (stem + suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def load_voc_folder(annotations: Path, images: Path) -> list[AnnotatedImage]:
    """Every ``*.xml`` in a folder, sorted by name; images are looked up in ``images``."""
    files = sorted(p for p in annotations.iterdir() if p.suffix.lower() == ".xml")
    if not files:
        raise AnnotationError(f"annotation folder {annotations} has no .xml files")
    loaded, missing = [], []
    for xml in files:
        try:
            text = xml.read_bytes()
        except OSError as exc:
            raise AnnotationError(f"{xml}: cannot read ({exc.strerror or exc})") from None
        filename, width, height, objects = parse_voc(text, str(xml))
        path = _find_image(images, filename, xml.stem)
        if path is None:
            missing.append(f"{filename or xml.stem} (from {xml.name})")
            continue
        loaded.append(AnnotatedImage(path, width, height, objects, str(xml)))
    _fail_if_missing(missing, images)
    return loaded


def parse_csv(text: str, source: str = "annotations.csv") -> list[tuple[str, int | None,
                                                                         int | None, AnnotatedObject]]:
    """Parse CSV annotation rows: (filename, width, height, object) per row."""
    reader = csv.DictReader(io.StringIO(text))
    header = [c.strip() for c in reader.fieldnames or []]
    absent = [c for c in CSV_COLUMNS if c not in header]
    if absent:
        raise AnnotationError(
            f"{source}: header lacks {', '.join(absent)}; expected {','.join(CSV_COLUMNS)}"
        )
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{source} line {line}"
        if not row["filename"]:
            raise AnnotationError(f"{where}: filename is empty")
        coords = [_number(row[k], k, where) for k in ("xmin", "ymin", "xmax", "ymax")]
        width = _size(_number(row["width"] or "0", "width", where))
        height = _size(_number(row["height"] or "0", "height", where))
        rows.append((row["filename"], width, height, _object(row["class"], coords, where)))
    return rows


def load_csv(annotations: Path, images: Path) -> list[AnnotatedImage]:
    """A CSV file of objects, grouped per image in the order images first appear."""
    try:
        text = annotations.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{annotations}: cannot read ({exc})") from None
    grouped: dict[str, list] = {}
    for filename, width, height, obj in parse_csv(text, str(annotations)):
        entry = grouped.setdefault(filename, [width, height, []])
        entry[2].append(obj)
    if not grouped:
        raise AnnotationError(f"{annotations} has a header but no rows")
    missing = [name for name in grouped if not (images / name).is_file()]
    _fail_if_missing(missing, images)
    return [
        AnnotatedImage(images / name, w, h, tuple(objs), f"{annotations} ({name})")
        for name, (w, h, objs) in grouped.items()
    ]


def load_annotations(annotations: Path, images: Path) -> list[AnnotatedImage]:
    """A folder of Pascal VOC ``.xml`` files or a ``.csv`` file, for images in ``images``."""
    annotations, images = Path(annotations), Path(images)
    if not images.is_dir():
        raise AnnotationError(f"image folder {images} does not exist")
    if annotations.is_dir():
        return load_voc_folder(annotations, images)
    if annotations.is_file() and annotations.suffix.lower() == ".csv":
        return load_csv(annotations, images)
    if not annotations.exists():
        raise AnnotationError(f"annotations {annotations} do not exist")
    raise AnnotationError(
        f"annotations {annotations}: expected a folder of Pascal VOC .xml files or a .csv file"
    )


def _fail_if_missing(missing: list[str], images: Path) -> None:
    if missing:
        shown = ", ".join(missing[:SHOW_MISSING])
        more = f" and {len(missing) - SHOW_MISSING} more" if len(missing) > SHOW_MISSING else ""
        raise AnnotationError(
            f"{len(missing)} annotated image(s) not found in {images}: {shown}{more}"
        )


def with_size(item: AnnotatedImage, width: int, height: int) -> AnnotatedImage:
    """The annotation with the real image size, boxes clipped to it.

    A size the annotation states must match the image, or its boxes would
    not line up with what the detector sees.
    """
    stated = item.width is not None and item.height is not None
    if stated and (item.width, item.height) != (width, height):
        raise AnnotationError(
            f"{item.source}: says the image is {item.width}x{item.height}, but {item.path} "
            f"is {width}x{height}; fix the <size> (or width,height) or the image"
        )
    objects = tuple(
        replace(o, box=(
            min(max(o.box[0], 0.0), width), min(max(o.box[1], 0.0), height),
            min(max(o.box[2], 0.0), width), min(max(o.box[3], 0.0), height),
        ))
        for o in item.objects
    )
    return replace(item, width=width, height=height, objects=objects)
