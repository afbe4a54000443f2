"""Teaching while running: what buttons and MQTT commands do to the store.

:class:`Teacher` implements the MQTT ``CommandTarget`` and the button
callbacks; after every change it re-announces the class counts.  It embeds
through the :class:`~edgeknn.service.engine.Engine` and takes frames from a
:class:`~edgeknn.service.engine.FrameSource` (see the engine module for which
thread may call what).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from edgeknn.errors import CameraError, EdgeKnnError
from edgeknn.images import crop_region, encode_jpeg
from edgeknn.mqtt.commands import Reply
from edgeknn.results import Frame
from edgeknn.service.detection_stage import largest
from edgeknn.service.engine import Engine, FrameSource
from edgeknn.service.viewmaker import ViewMaker
from edgeknn.store import make_example

log = logging.getLogger(__name__)

FRAME_WAIT = 5.0  # seconds to wait for a new camera frame when teaching from the camera


class Teacher:
    """Adds, removes and renames examples on request; the CommandTarget of the MQTT layer."""

    def __init__(
        self,
        engine: Engine,
        frames: FrameSource,
        *,
        on_change: Callable[[dict[str, int]], None],
        on_snapshot: Callable[[bytes], None] | None = None,
        default_target: str,
        frame_wait: float = FRAME_WAIT,
        view_maker: ViewMaker | None = None,
    ) -> None:
        self._engine = engine
        self._frames = frames
        self._on_change = on_change
        self._on_snapshot = on_snapshot
        self._default_target = default_target
        self._view_maker = view_maker  # crop views off the teaching path; None: made inline
        self._frame_wait = frame_wait
        self._last_taught_index = -1
        # One teaching request at a time (MQTT worker, button worker), so that two
        # never take the same frame (engine module, rule 3).
        self._teach_lock = threading.Lock()

    # ----- the CommandTarget ------------------------------------------------

    def add(self, label: str, count: int = 1, image: np.ndarray | None = None,
            target: str | None = None) -> Reply:
        target = target or self._default_target
        with self._teach_lock:
            if image is not None:
                images = [self._target_region(image, target)]
                source = "mqtt:image"
            else:
                images = [self._target_region(f.image, target) for f in self._next_frames(count)]
                source = "camera"
            examples = []
            for img in images:
                embedding, mirror = self._engine.embed_views(img)  # mirror only with views = mirror
                examples.append(make_example(label, img, embedding, source, mirror))
            ids = self._engine.store.add_many(examples)
            if self._engine.views == "crops":  # made after the example is stored (viewmaker.py)
                for example_id, img in zip(ids, images, strict=True):
                    if self._view_maker is not None:
                        self._view_maker.submit(example_id, img)
                    else:
                        self._engine.store.add_views(example_id, self._engine.embed_crop_views(img))
        counts = self._changed()
        log.info("taught %d example(s) of %r (%s, %s)", len(ids), label, source, target)
        return {"label": label, "example_ids": ids, "counts": counts}

    def remove_label(self, label: str) -> Reply:
        removed = self._engine.store.clear_class(label)
        return {"label": label, "removed": removed, "counts": self._changed()}

    def remove_example(self, example_id: int) -> Reply:
        label = self._engine.store.remove(example_id)
        return {"example_id": example_id, "label": label, "removed": 1, "counts": self._changed()}

    def clear(self) -> Reply:
        removed = self._engine.store.clear()
        return {"removed": removed, "counts": self._changed()}

    def rename(self, old: str, new: str) -> Reply:
        moved = self._engine.store.rename(old, new)
        return {"from": old, "to": new, "moved": moved, "counts": self._changed()}

    def snapshot(self) -> Reply:
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
            frame = self._frames.newer_than(after, self._frame_wait)
            if frame is None:
                if frames:
                    break  # the camera stopped mid-way: teach what we have
                raise CameraError(f"no new camera frame within {self._frame_wait:g} s; is the camera working?")
            frames.append(frame)
            after = frame.index
        self._last_taught_index = after
        return frames

    def _target_region(self, image: np.ndarray, target: str) -> np.ndarray:
        if target == "frame":
            return image
        # "largest_object", the other of TARGETS (the config and the MQTT command allow no third)
        if self._engine.detector is None:
            raise EdgeKnnError("target largest_object needs the detector: set [detector] enabled = true")
        best = largest(self._engine.detect(image))
        if best is None:
            raise EdgeKnnError("target largest_object: the detector found no object in the frame")
        return crop_region(image, best.box_px)

    def _changed(self) -> dict[str, int]:
        counts = self._engine.store.counts()
        self._on_change(counts)
        return counts
