"""Object detection: an RGB frame -> :class:`~edgeknn.results.Detection` list.

Runs SSD-style TFLite detectors that end in the ``TFLite_Detection_PostProcess``
custom op (TF1 Object Detection API exports, TF2 exports, EfficientDet-Lite),
on the Edge TPU or the CPU through :func:`edgeknn.vision.runtime.open_interpreter`.

The op always has four outputs: boxes ``[1, N, 4]`` (ymin, xmin, ymax, xmax
normalised to the input), classes ``[1, N]``, scores ``[1, N]`` and count
``[1]``.  Exporters list them in different orders and under different names,
so they are told apart, in this order of trust, by:

1. the op's own output list read from the model file (boxes, classes,
   scores, count by the op's definition);
2. shape (boxes: last dimension 4; count: one element) and name
   (``TFLite_Detection_PostProcess:1`` classes / ``:2`` scores in TF1
   exports, ``StatefulPartitionedCall:1`` scores / ``:2`` classes in TF2
   ones, or names containing ``class`` / ``score``);
3. content, at the first frame with a detection: classes are whole numbers,
   scores lie in [0, 1] sorted from high to low.

Label files are checked against the op's ``num_classes`` at load.  When the
model file does not tell (no ``flatbuffers`` package), a class id the label
file does not name is reported as ``id:<n>`` and logged once, never an error
in the middle of a run.

A :class:`Detector` owns one interpreter and is not thread-safe: one caller
at a time (the service calls it only through its Engine: service/engine.py).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgeknn.boxes import model_box_to_frame
from edgeknn.errors import DetectorError
from edgeknn.images import Crop, as_rgb, fit
from edgeknn.results import Detection
from edgeknn.vision.labelmap import LabelMap, read_labels
from edgeknn.vision.runtime import OpenedModel, open_interpreter

if TYPE_CHECKING:
    from edgeknn.config import DetectorConfig

log = logging.getLogger(__name__)

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
_NAMED_SUFFIXES = {  # output name -> {suffix: role} for the two common exporters
    POSTPROCESS_OP: {"1": "classes", "2": "scores"},
    "StatefulPartitionedCall": {"1": "scores", "2": "classes"},
}


@dataclass(frozen=True)
class OutputLayout:
    """Which output tensor (by interpreter index) holds what.

    ``classes_scores_unsure`` is true when names did not tell classes from
    scores; ``classes`` and ``scores`` then hold a guess that the first frame
    with detections confirms or swaps (:func:`classes_first_by_content`).
    """

    boxes: int
    classes: int
    scores: int
    count: int
    classes_scores_unsure: bool = False


@dataclass(frozen=True)
class PostProcessOptions:
    """What the model file says about its ``TFLite_Detection_PostProcess`` op."""

    num_classes: int | None
    max_detections: int | None
    outputs: tuple[int, ...]  # tensor indices: boxes, classes, scores, count


def _describe(details: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{d.get('name', '?')} {[int(s) for s in d['shape']]}" for d in details)


def identify_outputs(
    details: Sequence[Mapping[str, Any]],
    model: str = "model",
    op_outputs: Sequence[int] | None = None,
) -> OutputLayout:
    """Tell the four PostProcess outputs apart from the interpreter's output details.

    ``details`` is ``interpreter.get_output_details()`` (dicts with ``name``,
    ``index`` and ``shape``); ``op_outputs``, if known, the op's own output
    tensor indices from the model file.  Raises :class:`DetectorError`
    naming the model and what it found when the outputs are not a detector's.
    """
    shapes = {int(d["index"]): tuple(int(s) for s in np.asarray(d["shape"])) for d in details}
    boxes = [i for i, s in shapes.items() if len(s) == 3 and s[0] == 1 and s[2] == 4]
    counts = [i for i, s in shapes.items() if len(s) <= 1 and int(np.prod(s)) == 1]
    if len(details) != 4 or len(boxes) != 1 or len(counts) != 1:
        raise DetectorError(
            f"{model} is not an SSD detector with the {POSTPROCESS_OP} op: expected four "
            f"outputs (boxes [1,N,4], classes [1,N], scores [1,N], count [1]), found "
            f"{_describe(details) or 'none'}"
        )
    n = shapes[boxes[0]][1]
    pair = [i for i in shapes if i not in (boxes[0], counts[0])]
    if any(shapes[i] != (1, n) for i in pair):
        raise DetectorError(
            f"{model}: classes and scores outputs must both be [1,{n}] like the boxes; "
            f"found {_describe(details)}"
        )
    if (
        op_outputs is not None
        and len(op_outputs) == 4
        and (op_outputs[0], op_outputs[3]) == (boxes[0], counts[0])
        and set(op_outputs[1:3]) == set(pair)
    ):  # the op's own order: boxes, classes, scores, count
        return OutputLayout(boxes[0], int(op_outputs[1]), int(op_outputs[2]), counts[0])
    names = {int(d["index"]): str(d.get("name", "")) for d in details}
    roles = {i: _role_from_name(names[i]) for i in pair}
    if sorted(r for r in roles.values() if r) == ["classes", "scores"]:
        by_role = {r: i for i, r in roles.items()}
        return OutputLayout(boxes[0], by_role["classes"], by_role["scores"], counts[0])
    first, second = pair  # a guess in TF1's order, checked on the first detections
    return OutputLayout(boxes[0], first, second, counts[0], classes_scores_unsure=True)


def _role_from_name(name: str) -> str | None:
    base, _, suffix = name.rpartition(":")
    role = _NAMED_SUFFIXES.get(base, {}).get(suffix)
    if role:
        return role
    lowered = name.casefold()
    if "class" in lowered and "score" not in lowered:
        return "classes"
    if "score" in lowered and "class" not in lowered:
        return "scores"
    return None


def classes_first_by_content(first: np.ndarray, second: np.ndarray) -> bool | None:
    """Which of two [N] arrays holds class ids: True if ``first``, False if ``second``.

    Class ids are whole numbers; scores lie in [0, 1] and come sorted from
    high to low.  None when the values cannot tell (no detections yet).
    """

    def could_be_classes(v: np.ndarray) -> bool:
        return bool(np.all(v >= 0) and np.all(v == np.round(v)))

    def could_be_scores(v: np.ndarray) -> bool:
        return bool(np.all((v >= 0) & (v <= 1)) and np.all(np.diff(v) <= 0))

    first_ok = could_be_classes(first) and could_be_scores(second)
    second_ok = could_be_classes(second) and could_be_scores(first)
    if first_ok != second_ok:
        return first_ok
    return None


def read_postprocess_options(model: Path) -> PostProcessOptions | None:
    """Read the PostProcess op's options from a .tflite file, or None if it cannot tell.

    The model is a FlatBuffer (TFLite ``schema.fbs``): Model.operator_codes
    names the custom op, Model.subgraphs[0].operators holds it, and its
    custom options are a FlexBuffer map with ``num_classes``.
    """
    try:
        from flatbuffers import flexbuffers, table  # a dependency of ai-edge-litert
        from flatbuffers import number_types as nt
    except ImportError:
        return None
    try:
        buf = bytearray(Path(model).read_bytes())
        root = table.Table(buf, int.from_bytes(buf[0:4], "little"))

        def tables(t: Any, slot: int) -> list[Any]:
            o = t.Offset(slot)
            if not o:
                return []
            start = t.Vector(o)
            return [table.Table(buf, t.Indirect(start + 4 * k)) for k in range(t.VectorLen(o))]

        def ints(t: Any, slot: int) -> tuple[int, ...]:
            o = t.Offset(slot)
            if not o:
                return ()
            start = t.Vector(o)
            return tuple(
                int.from_bytes(buf[start + 4 * k : start + 4 * k + 4], "little", signed=True)
                for k in range(t.VectorLen(o))
            )

        codes = []
        for code in tables(root, 6):  # Model.operator_codes
            o = code.Offset(6)  # OperatorCode.custom_code
            codes.append(code.String(o + code.Pos).decode() if o else None)
        for graph in tables(root, 8)[:1]:  # Model.subgraphs[0]
            for op in tables(graph, 10):  # SubGraph.operators
                o = op.Offset(4)  # Operator.opcode_index
                index = op.Get(nt.Uint32Flags, o + op.Pos) if o else 0
                if index >= len(codes) or codes[index] != POSTPROCESS_OP:
                    continue
                o = op.Offset(14)  # Operator.custom_options
                options: dict[str, Any] = {}
                if o:
                    start = op.Vector(o)
                    raw = bytes(buf[start : start + op.VectorLen(o)])
                    options = flexbuffers.Loads(raw)
                return PostProcessOptions(
                    num_classes=_int_or_none(options.get("num_classes")),
                    max_detections=_int_or_none(options.get("max_detections")),
                    outputs=ints(op, 8),  # Operator.outputs
                )
    except Exception as exc:  # a malformed file: the interpreter already accepted it
        log.warning(
            "could not read the %s options of %s (%s); label ids are checked as they come",
            POSTPROCESS_OP, model, exc,
        )
    return None


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def input_array(image: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    """Turn an RGB uint8 image of the input size into the input tensor's values.

    Quantized inputs take raw pixels: the input's scale and zero point map
    0..255 onto whatever range the model was trained on ([-1, 1] for TF1
    SSDs, [0, 1] for EfficientDet-Lite), so any rescaling here would be
    wrong for one of them.  ``int8`` inputs are the same pixels shifted by
    128.  Float inputs are normalised to [-1, 1] (mean and std 127.5), the
    MobileNet convention the embedder uses too.
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return image
    if dtype == np.int8:
        return (image.astype(np.int16) - 128).astype(np.int8)
    if dtype.kind == "f":
        return ((image.astype(np.float32) - 127.5) / 127.5).astype(dtype)
    raise DetectorError(f"detector input type {dtype} is not supported (uint8, int8 or float)")


def _dequantize(values: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    scale, zero = detail.get("quantization", (0.0, 0))
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float32) - zero) * scale
    return values.astype(np.float32)


def detections_from_outputs(
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    count: int,
    crop: Crop,
    label_of: Callable[[int], str],
    *,
    threshold: float = 0.5,
    max_detections: int | None = None,
    allow: frozenset[str] | None = None,
) -> list[Detection]:
    """Turn raw PostProcess values ([N,4], [N], [N]) into detections in frame coordinates.

    Keeps scores at or above ``threshold`` whose label is in ``allow`` (all if
    None), drops boxes that lie wholly outside the frame, and returns at most
    ``max_detections``, best first.
    """
    found: list[Detection] = []
    for k in range(min(int(count), len(scores))):
        score = float(scores[k])
        if not score >= threshold:  # also drops NaN
            continue
        class_id = int(round(float(classes[k])))
        label = label_of(class_id)
        if allow is not None and label not in allow:
            continue
        ymin, xmin, ymax, xmax = (float(v) for v in boxes[k])
        box = model_box_to_frame(ymin, xmin, ymax, xmax, crop)
        if box.area <= 0:
            continue
        px = box.to_pixels(crop.frame_width, crop.frame_height)
        found.append(Detection(label, class_id, score, box, px))
    found.sort(key=lambda d: -d.score)
    return found[:max_detections] if max_detections is not None else found


class Detector:
    """An SSD detector over one opened interpreter; see the module docstring.

    ``config`` is the ``[detector]`` section: its threshold, max_detections,
    allow list (empty = every label) and resize apply here.
    """

    def __init__(
        self,
        opened: OpenedModel,
        labels: LabelMap,
        config: DetectorConfig,
        *,
        postprocess: PostProcessOptions | None = None,
    ) -> None:
        self.opened = opened
        self.labels = labels
        name = opened.path.name
        self.threshold, self.max_detections, self.resize = config.threshold, config.max_detections, config.resize
        self.allow: frozenset[str] | None = frozenset(config.allow) or None
        unknown = sorted(self.allow - labels.labels) if self.allow is not None else []
        if unknown:
            raise DetectorError(
                f"allowed label(s) {', '.join(map(repr, unknown))} are not in label file "
                f"{labels.source}; {_suggest(unknown[0], labels)}"
            )
        interp = opened.interpreter
        inputs = interp.get_input_details()
        shape = tuple(int(s) for s in inputs[0]["shape"]) if len(inputs) == 1 else ()
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise DetectorError(
                f"{name}: expected one RGB image input [1,H,W,3], found {_describe(inputs)}"
            )
        self._input = inputs[0]
        self.input_size: tuple[int, int] = (shape[2], shape[1])  # width, height
        dtype = np.dtype(self._input["dtype"])
        if dtype not in (np.uint8, np.int8) and dtype.kind != "f":
            raise DetectorError(f"{name}: input type {dtype} is not supported (uint8, int8, float)")
        if postprocess is None:
            postprocess = read_postprocess_options(opened.path)
        self.postprocess = postprocess
        self._outputs = {int(d["index"]): d for d in interp.get_output_details()}
        self.layout = identify_outputs(
            list(self._outputs.values()), name, postprocess.outputs if postprocess else None
        )
        self.num_classes = postprocess.num_classes if postprocess else None
        if self.num_classes is not None and labels.max_id < self.num_classes - 1:
            raise DetectorError(
                f"label file {labels.source} names class ids up to {labels.max_id}, but "
                f"{name} reports {self.num_classes} classes (ids 0..{self.num_classes - 1}): "
                "it is too short or belongs to another model"
            )
        if self.num_classes is not None and len(labels) == self.num_classes + 1:
            log.warning(
                "label file %s has %d labels for %s's %d classes; if its first line names the "
                "background class, write it as ??? so that ids line up",
                labels.source, len(labels), name, self.num_classes,
            )
        self._unnamed_ids: set[int] = set()

    def label_of(self, class_id: int) -> str:
        """The class's label, or ``id:<n>`` (logged once) for an id the label file lacks."""
        label = self.labels.name(class_id)
        if label is not None:
            return label
        if class_id not in self._unnamed_ids:
            self._unnamed_ids.add(class_id)
            log.warning(
                "%s reported class id %d, which label file %s does not name; reporting it "
                "as id:%d", self.opened.path.name, class_id, self.labels.source, class_id,
            )
        return f"id:{class_id}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detect objects in an RGB uint8 frame; boxes are in that frame's coordinates."""
        image = as_rgb(image)
        fitted, crop = fit(image, *self.input_size, self.resize)
        interp = self.opened.interpreter
        try:
            interp.set_tensor(self._input["index"], input_array(fitted, self._input["dtype"])[None])
            interp.invoke()
            raw = {i: _dequantize(interp.get_tensor(i), d) for i, d in self._outputs.items()}
        except (RuntimeError, ValueError) as exc:
            raise DetectorError(f"{self.opened.path.name} failed to run: {exc}") from None
        lay = self.layout
        count = int(raw[lay.count].reshape(-1)[0])
        classes, scores = raw[lay.classes][0], raw[lay.scores][0]
        if lay.classes_scores_unsure and count > 0:
            first = classes_first_by_content(classes[:count], scores[:count])
            if first is False:
                classes, scores = scores, classes
            if first is not None:
                self.layout = OutputLayout(
                    lay.boxes, *((lay.classes, lay.scores) if first else (lay.scores, lay.classes)),
                    lay.count,
                )
        return detections_from_outputs(
            raw[lay.boxes][0], classes, scores, count, crop, self.label_of,
            threshold=self.threshold, max_detections=self.max_detections, allow=self.allow,
        )


def _suggest(label: str, labels: LabelMap) -> str:
    by_fold = {name.casefold(): name for name in labels.labels}
    close = difflib.get_close_matches(label.casefold(), list(by_fold), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(by_fold[c]) for c in close) + "?"
    return "labels are case-sensitive, e.g. " + ", ".join(sorted(labels.labels)[:3])


def open_detector(
    model: Path,
    labels: Path | LabelMap,
    config: DetectorConfig,
    *,
    edgetpu_model: Path | None = None,
) -> Detector:
    """Open a detector model (and its Edge TPU variant) and its label file, as the
    ``[detector]`` section says (its accelerator, device, threads and options)."""
    label_map = labels if isinstance(labels, LabelMap) else read_labels(labels)
    opened = open_interpreter(
        Path(model), edgetpu_model=edgetpu_model, accelerator=config.accelerator,
        device=config.device or None, threads=config.threads or None,
    )
    return Detector(opened, label_map, config)
