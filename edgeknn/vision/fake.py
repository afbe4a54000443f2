"""An embedder and a detector for tests, shipped beside the real ones (as cameras/fake.py).

They implement :class:`~edgeknn.service.engine.Embeds` and
:class:`~edgeknn.service.engine.Detects` without a model file, quickly and
deterministically, and have verbs to break them::

    embedder = FakeEmbedder()
    embedder.fail_next(2)              # the next two embeds raise ModelError
    detector = FakeDetector()
    detector.add_object("cat", (10, 10, 50, 40))  # from now on every frame shows a cat there
    detector.remove_objects()          # ... and now nothing
    detector.fail_next()               # the next detect raises DetectorError

:class:`FakeEmbedder` embeds an image as the mean colour of each quarter, so
frames of one solid colour are near each other and far from another colour's.
Both record the images they were given (``seen``).  Given one
:class:`FakeAccelerator`, they note how many inferences ever ran at once on it,
as a test of who may call an interpreter when (see service/engine.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from edgeknn.errors import DetectorError, ModelError
from edgeknn.results import Box, Detection
from edgeknn.vision.embedder import EmbedderInfo, fingerprint_of


class FakeAccelerator:
    """One device shared by fake models: counts inferences, and the most ever at once."""

    def __init__(self, seconds_per_run: float = 0.0) -> None:
        self.seconds_per_run = seconds_per_run  # how long an inference holds the device
        self.runs = 0
        self.most_at_once = 0
        self._inside = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        with self._lock:
            self._inside += 1
            self.runs += 1
            self.most_at_once = max(self.most_at_once, self._inside)
        time.sleep(self.seconds_per_run)
        with self._lock:
            self._inside -= 1


class _Breakable:
    def __init__(self, accelerator: FakeAccelerator | None) -> None:
        self.seen: list[np.ndarray] = []
        self._accelerator = accelerator
        self._failures = 0
        self._lock = threading.Lock()  # verbs come from the test thread, calls from others

    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._failures += n

    def _run(self, image: np.ndarray) -> bool:
        """Record the call; False if this one is to fail."""
        if self._accelerator is not None:
            self._accelerator.run()
        with self._lock:
            self.seen.append(image)
            if self._failures:
                self._failures -= 1
                return False
        return True


class FakeEmbedder(_Breakable):
    """An :class:`~edgeknn.service.engine.Embeds`: the mean RGB of each image quarter, unit length."""

    DIM = 12

    def __init__(self, input_size: tuple[int, int] = (32, 32), *,
                 accelerator: FakeAccelerator | None = None) -> None:
        super().__init__(accelerator)
        self.info = EmbedderInfo(
            tensor="quarter-means", dim=self.DIM, input_size=input_size, backend="cpu",
            fingerprint=fingerprint_of("0" * 16, "quarter-means"),
        )

    def embed(self, image: np.ndarray) -> np.ndarray:
        if not self._run(image):
            raise ModelError("fake embedder (cpu) failed to run: as the test asked")
        h, w = image.shape[0], image.shape[1]
        quarters = [image[:max(1, h // 2), :max(1, w // 2)], image[:max(1, h // 2), w // 2:],
                    image[h // 2:, :max(1, w // 2)], image[h // 2:, w // 2:]]
        vec = np.concatenate([q.reshape(-1, 3).mean(axis=0) for q in quarters]).astype(np.float32)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec


class FakeDetector(_Breakable):
    """A :class:`~edgeknn.service.engine.Detects` that finds what it was told to see."""

    def __init__(self, *, accelerator: FakeAccelerator | None = None) -> None:
        super().__init__(accelerator)
        self._objects: list[tuple[str, tuple[int, int, int, int], float]] = []

    def add_object(self, label: str, box_px: tuple[int, int, int, int], score: float = 0.9) -> None:
        """From now on every frame holds this object too, at these pixels (x0, y0, x1, y1)."""
        with self._lock:
            self._objects.append((label, box_px, score))

    def remove_objects(self) -> None:
        """From now on the frames hold nothing."""
        with self._lock:
            self._objects = []

    def detect(self, image: np.ndarray) -> list[Detection]:
        if not self._run(image):
            raise DetectorError("fake detector failed to run: as the test asked")
        h, w = image.shape[0], image.shape[1]
        with self._lock:
            objects = list(self._objects)
        found = []
        for class_id, (label, (x0, y0, x1, y1), score) in enumerate(objects):
            box = Box(x0 / w, y0 / h, x1 / w, y1 / h)
            found.append(Detection(label, class_id, score, box, (x0, y0, x1, y1)))
        return sorted(found, key=lambda d: -d.score)
