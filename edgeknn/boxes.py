"""Box geometry: from a model's input back to the frame, clipping, IoU.

Pure functions over floats and numpy arrays.  Coordinate conventions:

* A detector reports ``(ymin, xmin, ymax, xmax)`` normalised to its *input*
  tensor, which shows only the :class:`~edgeknn.images.Crop` of the frame
  that was resized into it (the whole frame for ``squash``, a centred part
  for ``center-crop``).
* edgeknn hands out :class:`~edgeknn.results.Box` in ``(xmin, ymin, xmax,
  ymax)`` normalised to the *original frame*, clipped to it, and pixel boxes
  ``(x0, y0, x1, y1)`` of that frame.
* Evaluation works on pixel ``(x0, y0, x1, y1)`` arrays with COCO's area
  convention: width times height, no ``+1``.
"""

from __future__ import annotations

import numpy as np

from edgeknn.images import Crop
from edgeknn.results import Box


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def clip_box(box: Box) -> Box:
    """The part of a normalised box inside the frame (possibly empty), corners ordered."""
    x0, x1 = sorted((box.xmin, box.xmax))
    y0, y1 = sorted((box.ymin, box.ymax))
    return Box(_clip01(x0), _clip01(y0), _clip01(x1), _clip01(y1))


def model_box_to_frame(
    ymin: float, xmin: float, ymax: float, xmax: float, crop: Crop
) -> Box:
    """Map a box normalised to the model input back into the frame, clipped.

    The model input is the ``crop`` region stretched to the input size, so a
    model coordinate ``u`` lands at ``crop.x + u * crop.width`` in frame
    pixels; dividing by the frame size normalises it again.
    """
    fw, fh = crop.frame_width, crop.frame_height
    return clip_box(
        Box(
            xmin=(crop.x + xmin * crop.width) / fw,
            ymin=(crop.y + ymin * crop.height) / fh,
            xmax=(crop.x + xmax * crop.width) / fw,
            ymax=(crop.y + ymax * crop.height) / fh,
        )
    )


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes in the same coordinates (0 if both are empty)."""
    w = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    h = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), both x0, y0, x1, y1."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
