"""The data that flows through edgeknn: frames, predictions, detections.

All frozen dataclasses; the MQTT JSON is built from them in ``edgeknn.mqtt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera frame: RGB uint8 (H, W, 3), its sequence number and capture times."""

    image: np.ndarray
    index: int
    captured: float  # time.monotonic() at capture, for latency
    timestamp: float  # time.time() at capture, for the ISO 8601 "ts"

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Neighbor:
    label: str
    similarity: float
    example_id: int


@dataclass(frozen=True)
class Prediction:
    """What the KNN store says of one embedding.

    ``label`` is the winning class, or ``None`` when the store is empty.
    ``scores`` maps every class to its share (they sum to 1).  ``unknown`` is
    true when the best similarity is below the configured threshold; ``label``
    still names the nearest class then, so callers can show it.
    """

    label: str | None
    confidence: float
    scores: dict[str, float]
    similarity: float
    unknown: bool
    neighbors: tuple[Neighbor, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Box:
    """A box in normalised frame coordinates (0..1), clipped to the frame."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (
            round(self.xmin * width),
            round(self.ymin * height),
            round(self.xmax * width),
            round(self.ymax * height),
        )

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: Box
    box_px: tuple[int, int, int, int]
    classification: Prediction | None = None  # detect-then-classify result
