"""Refitting the few-shot head off the frame path: one background thread, debounced.

The frame loop never waits for a fit.  After a change the store's version
moves on, the stale head stops being used (the class means answer), and this
thread refits once the store has been quiet for ``debounce`` seconds, so a
held teach button (many adds a second) costs one refit, not one per add.
Each refit starts from the previous weights.

Where the line is: a fit costs a few hundred iterations over every row
(``edgeknn bench store`` prints it at 100 / 1k / 10k rows).  Above
``max_rows`` the head is fitted on an even per-class sample of that many rows
(the class means still see every row), so a refit stays bounded on a Pi.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from edgeknn.features import FeatureTransform
from edgeknn.head import Head, fit_head
from edgeknn.store import Store

log = logging.getLogger(__name__)

DEBOUNCE = 0.2  # seconds of quiet after a change before refitting
POLL = 0.05  # how often the thread looks at the store's version
MAX_ROWS = 4000


class Refitter:
    """Keeps ``head`` fitted to the store's current version; ``start``/``stop`` the thread."""

    def __init__(
        self,
        store: Store,
        transform: FeatureTransform,
        *,
        debounce: float = DEBOUNCE,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._store = store
        self._transform = transform
        self._debounce = debounce
        self._max_rows = max_rows
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.head: Head | None = None
        self.last_error: str | None = None

    @property
    def transform(self) -> FeatureTransform:
        return self._transform

    def refit_now(self) -> Head | None:
        """Fit on the store as it is now (in the caller's thread); None for an empty store."""
        raw, labels, version = self._store.snapshot()
        if not labels:
            self.head = None
            return None
        if len(labels) > self._max_rows:
            keep = even_sample(np.array(labels), self._max_rows)
            raw, labels = raw[keep], [labels[i] for i in keep]
        self.head = fit_head(raw.astype(np.float32), labels, self._transform, version, warm=self.head)
        return self.head

    def changed(self) -> None:
        """Say the store changed (the thread also notices by itself within POLL seconds)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgeknn-refit", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; False if a fit in progress outlived ``timeout``."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            version = self._store.version
            if version == seen or (self.head is not None and self.head.version == version):
                seen = version
                continue
            # Debounce: wait until the version has stood still for a while.
            while not self._stop.wait(self._debounce) and self._store.version != version:
                version = self._store.version
            if self._stop.is_set():
                return
            try:
                head = self.refit_now()
                self.last_error = None
                if head is not None:
                    log.debug("refitted on %d rows in %.0f ms", head.rows, head.seconds * 1e3)
            except (ValueError, FloatingPointError, MemoryError) as exc:
                # The class means keep answering; the next change tries again.
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("refitting the few-shot head failed (%s); the class means answer", exc)
            seen = version


def even_sample(labels: np.ndarray, total: int) -> np.ndarray:
    """Indices of at most ``total`` rows, as evenly shared between classes as their sizes allow."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.zeros(len(classes), dtype=np.int64)
    left = total
    for rank, i in enumerate(np.argsort(counts, kind="stable")):  # small classes first: they keep all rows
        quota[i] = min(counts[i], left // (len(classes) - rank))
        left -= quota[i]
    picks = []
    for cls, q in zip(classes, quota, strict=True):
        rows = np.flatnonzero(labels == cls)
        picks.append(rows[np.linspace(0, len(rows) - 1, q).round().astype(np.int64)] if q else rows[:0])
    return np.sort(np.concatenate(picks))


def wait_for_head(refitter: Refitter, version: int, timeout: float) -> Head | None:
    """The head once it covers ``version`` (for commands and tests), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = refitter.head
        if head is not None and head.version >= version:
            return head
        time.sleep(0.01)
    return None
