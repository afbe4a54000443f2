"""Crop views of taught frames, made after the example is stored (``classifier.views = "crops"``).

A taught example is stored (and counts) as soon as its frame is embedded; its
five crop views (mirror and four corners, ~100 ms each on a Pi 4's CPU) are
made here, on their own thread, and then stored as extra rows for the head,
which refits with them.  So a button press or a hold that records
``record_rate`` examples a second costs the teaching path one invoke per
example, as with no views; the views follow when the inference lock allows.
Frames queued past ``MAX_PENDING`` are taught without views (logged), so a
long hold cannot grow memory without bound.  An example removed before its
views are made simply gets none.
"""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np

from edgeknn.errors import EdgeKnnError
from edgeknn.service.engine import Engine

log = logging.getLogger(__name__)

MAX_PENDING = 64  # taught frames waiting for their views (~0.9 MB each at 640x480: ~60 MB)


class ViewMaker:
    """Makes and stores the crop views of taught examples; ``start``/``stop`` the thread."""

    def __init__(self, engine: Engine, *, max_pending: int = MAX_PENDING) -> None:
        self._engine = engine
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self.made = 0  # examples whose views were stored

    def submit(self, example_id: int, image: np.ndarray) -> None:
        try:
            self._queue.put_nowait((example_id, image))
        except queue.Full:
            log.warning("example %d taught without crop views: %d frames already wait for theirs",
                        example_id, self._queue.maxsize)

    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgeknn-views", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread (views not yet made are dropped); False if it outlived ``timeout``."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def drain(self) -> None:
        """Make the views of everything submitted so far, in the caller's thread (tests, tools)."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._make(*job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            self._make(*job)

    def _make(self, example_id: int, image: np.ndarray) -> None:
        try:
            if self._engine.store.add_views(example_id, self._engine.embed_crop_views(image)):
                self.made += 1
                if self._engine.refitter is not None:
                    self._engine.refitter.changed()
        except EdgeKnnError as exc:  # the model failed, the disk is full...: the example stays
            log.error("crop views of example %d not made (%s); it is kept without them", example_id, exc)
