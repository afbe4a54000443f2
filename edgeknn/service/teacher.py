"""Teaching while running: what buttons and MQTT commands do to the store.

:class:`Engine` is the one place the embedder and the store are used from
several threads (processing loop, MQTT command worker, button recorder): the
interpreter is not thread-safe, so embedding is serialised by a lock.

:class:`Teacher` implements the MQTT ``CommandTarget`` and the button
callbacks; after every change it re-announces the class counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeknn.config import ClassifierConfig
from edgeknn.errors import CameraError, EdgeKnnError
from edgeknn.images import crop_region, encode_jpeg
from edgeknn.results import Frame, Prediction
from edgeknn.store import Store, make_example
from edgeknn.vision.embedder import Embedder

log = logging.getLogger(__name__)

FRAME_WAIT = 5.0  # seconds to wait for a new camera frame when teaching from the camera


class Engine:
    """The embedder and the store, shared safely between threads."""

    def __init__(self, embedder: Embedder, store: Store, classifier: ClassifierConfig) -> None:
        self.embedder = embedder
        self.store = store
        self.classifier = classifier
        self._lock = threading.Lock()

    def embed(self, image: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.embedder.embed(image)

    def predict(self, embedding: np.ndarray) -> Prediction:
        return self.store.predict(embedding, self.classifier)

    def embed_and_predict(self, image: np.ndarray) -> tuple[np.ndarray, Prediction]:
        embedding = self.embed(image)
        return embedding, self.predict(embedding)


class Teacher:
    """Adds, removes and renames examples on request; the CommandTarget of the MQTT layer."""

    def __init__(
        self,
        engine: Engine,
        frames: Any,  # pipeline.FrameSlot: .latest and .newer_than(index, timeout)
        *,
        on_change: Callable[[dict[str, int]], None],
        find_object: Callable[[np.ndarray], tuple[int, int, int, int] | None] | None = None,
        on_snapshot: Callable[[bytes], None] | None = None,
        default_target: str = "frame",
    ) -> None:
        self._engine = engine
        self._frames = frames
        self._on_change = on_change
        self._find_object = find_object
        self._on_snapshot = on_snapshot
        self._default_target = default_target
        self._last_taught_index = -1
        self._teach_lock = threading.Lock()  # one teaching action at a time

    # ----- the CommandTarget ------------------------------------------------

    def add(self, label: str, count: int = 1, image: np.ndarray | None = None,
            target: str | None = None) -> dict[str, Any]:
        target = target or self._default_target
        with self._teach_lock:
            if image is not None:
                images = [self._target_region(image, target)]
                source = "mqtt:image"
            else:
                images = [self._target_region(f.image, target) for f in self._next_frames(count)]
                source = "camera"
            examples = [make_example(label, img, self._engine.embed(img), source) for img in images]
            ids = self._engine.store.add_many(examples)
        counts = self._changed()
        log.info("taught %d example(s) of %r (%s, %s)", len(ids), label, source, target)
        return {"label": label, "example_ids": ids, "counts": counts}

    def remove_label(self, label: str) -> dict[str, Any]:
        removed = self._engine.store.clear_class(label)
        return {"label": label, "removed": removed, "counts": self._changed()}

    def remove_example(self, example_id: int) -> dict[str, Any]:
        label = self._engine.store.remove(example_id)
        return {"example_id": example_id, "label": label, "removed": 1, "counts": self._changed()}

    def clear(self) -> dict[str, Any]:
        removed = self._engine.store.clear()
        return {"removed": removed, "counts": self._changed()}

    def rename(self, old: str, new: str) -> dict[str, Any]:
        moved = self._engine.store.rename(old, new)
        return {"from": old, "to": new, "moved": moved, "counts": self._changed()}

    def snapshot(self) -> dict[str, Any]:
        frame = self._frames.latest
        if frame is None:
            raise CameraError("no camera frame yet; is the camera working? (see the state topic)")
        jpeg = encode_jpeg(frame.image, quality=85)
        if self._on_snapshot:
            self._on_snapshot(jpeg)
        return {"frame": frame.index, "bytes": len(jpeg), "width": frame.width, "height": frame.height}

    # ----- buttons -----------------------------------------------------------

    def add_from_button(self, label: str) -> None:
        """One example from the camera, as a button press (or one tick of a hold) asks."""
        self.add(label, 1, None, None)

    def clear_from_button(self) -> None:
        result = self.clear()
        log.warning("clear button held: removed all %d examples", result["removed"])

    # ----- helpers -----------------------------------------------------------

    def _next_frames(self, count: int) -> list[Frame]:
        """``count`` distinct frames, none taught before: the newest, then the ones after it."""
        frames: list[Frame] = []
        after = self._last_taught_index
        for _ in range(count):
            frame = self._frames.newer_than(after, FRAME_WAIT)
            if frame is None:
                if frames:
                    break  # the camera stopped mid-way: teach what we have
                raise CameraError(f"no new camera frame within {FRAME_WAIT:.0f} s; is the camera working?")
            frames.append(frame)
            after = frame.index
        self._last_taught_index = after
        return frames

    def _target_region(self, image: np.ndarray, target: str) -> np.ndarray:
        if target == "frame":
            return image
        if target != "largest_object":
            raise EdgeKnnError(f"target {target!r} is not one of frame, largest_object")
        if self._find_object is None:
            raise EdgeKnnError("target largest_object needs the detector: set [detector] enabled = true")
        box = self._find_object(image)
        if box is None:
            raise EdgeKnnError("target largest_object: the detector found no object in the frame")
        return crop_region(image, box)

    def _changed(self) -> dict[str, int]:
        counts = self._engine.store.counts()
        self._on_change(counts)
        return counts
