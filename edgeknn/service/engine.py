"""The engine: the models and the store that the service's threads share.

What flows through it, and the seams a test (or another board) plugs into:

    FrameSource --frames--> Embeds --embedding--> Store --Prediction-->
                            Detects --detections--^ (crops, when objects are classified)

:class:`Embeds`, :class:`Detects` and :class:`FrameSource` are the small
interfaces the processing loop, the teacher and the detection stage are
written against.  The real ones are :class:`~edgeknn.vision.embedder.Embedder`,
:class:`~edgeknn.vision.detector.Detector` and
:class:`~edgeknn.service.pipeline.FrameSlot`; the fakes in
:mod:`edgeknn.vision.fake` stand beside them for tests.

The locking rule
----------------
Eight kinds of thread touch the models or the store: the processing loop
(every frame), the MQTT command worker and the button worker (when they
teach), the web server's threadpool (``web/app.py`` runs each HTTP command
through ``run_command`` -> Teacher -> Engine, and reads the store's counts,
examples and thumbnails, in Starlette's worker threads, several at once), the
MQTT network thread (counts on reconnecting, Home Assistant's class list), the
refit thread (store snapshots, service/refit.py), the view maker (crop views
of taught frames, service/viewmaker.py) and the main thread (stats, SIGHUP).
The rule holds for any thread, and is written here and nowhere else:

1. **The interpreters are called only through the Engine, under its one
   lock.**  A LiteRT interpreter is not thread-safe, and the embedder and the
   detector may share one Edge TPU, so :meth:`Engine.embed` and
   :meth:`Engine.detect` run one inference at a time, whichever thread asks.
   Nothing in the service calls ``Embedder.embed`` or ``Detector.detect``
   directly.
2. **The store guards itself.**  :class:`~edgeknn.store.Store` holds its own
   lock around its database and search matrix, so any thread may call it.  The
   Engine never calls the store while holding its lock, so the two locks never
   nest and cannot deadlock.
3. **Other shared state is handed over, not shared.**  Other threads change
   the processing loop only through ``Processor.reset`` and
   ``Processor.configure``, which it applies between frames; frames pass from
   the capture thread through ``FrameSlot``; the Teacher takes one teaching
   request at a time, so the MQTT worker, the button worker and the web
   threads never teach the same frame.  The refit thread publishes a new head
   by replacing it whole.  The detection stage's state belongs to the
   processing loop alone.  The ``[classifier]`` config section is replaced
   whole (a frozen value) on SIGHUP; a prediction reads it once and sees the
   old or the new, never a mix.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from edgeknn.config import ClassifierConfig
from edgeknn.errors import DetectorError
from edgeknn.features import RAW
from edgeknn.head import VIEW_COST, views_in_effect
from edgeknn.images import corner_views
from edgeknn.results import Detection, Frame, Prediction
from edgeknn.service.refit import Refitter
from edgeknn.store import Store
from edgeknn.store.views import CORNERS, MIRROR
from edgeknn.vision.embedder import EmbedderInfo


class Embeds(Protocol):
    """Image -> unit-length embedding (:class:`~edgeknn.vision.embedder.Embedder`)."""

    @property
    def info(self) -> EmbedderInfo: ...

    def embed(self, image: np.ndarray) -> np.ndarray:
        """An RGB uint8 image of any size -> float32 unit vector of ``info.dim``;
        ModelError when the model fails to run."""
        ...


class Detects(Protocol):
    """Image -> objects found in it (:class:`~edgeknn.vision.detector.Detector`)."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in ``image``'s coordinates, best first; DetectorError when it fails to run."""
        ...


class FrameSource(Protocol):
    """Where the teacher takes camera frames from (:class:`~edgeknn.service.pipeline.FrameSlot`)."""

    @property
    def latest(self) -> Frame | None:
        """The newest frame, or None before the first."""
        ...

    def newer_than(self, index: int, timeout: float) -> Frame | None:
        """The newest frame with an index above ``index``, waiting up to ``timeout``; None if none came."""
        ...


class Engine:
    """The embedder, the detector (if any) and the store, shared by the service's threads.

    See the module docstring for who may call what.  ``classifier`` may be
    replaced from any thread (SIGHUP); it is read once per prediction.
    """

    def __init__(self, embedder: Embeds, store: Store, classifier: ClassifierConfig,
                 detector: Detects | None = None, refitter: Refitter | None = None) -> None:
        self.embedder = embedder
        self.detector = detector
        self.store = store
        self.classifier = classifier
        self.refitter = refitter  # keeps the logreg head fitted (service/refit.py)
        self._inference = threading.Lock()  # one interpreter call at a time (rule 1)

    @property
    def views(self) -> str:
        """"mirror", "crops" or "none": what classifier.views means on this embedder's backend."""
        return views_in_effect(self.classifier.views, self.embedder.info.backend)

    @property
    def has_detector(self) -> bool:
        return self.detector is not None

    def embed(self, image: np.ndarray) -> np.ndarray:
        with self._inference:
            return self.embedder.embed(image)

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self.detector is None:
            raise DetectorError("no detector is running: set [detector] enabled = true")
        with self._inference:
            return self.detector.detect(image)

    def embed_views(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame's embedding and, with views = mirror, its mirror image's."""
        mirrored = self.views == "mirror"
        with self._inference:
            embedding = self.embedder.embed(image)
            mirror = self.embedder.embed(np.ascontiguousarray(image[:, ::-1])) if mirrored else None
        return embedding, mirror

    def embed_crop_views(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """The mirror and the four corner views of a taught frame (views = crops), one invoke
        at a time so that frames keep flowing between them."""
        w, h = self.embedder.info.input_size
        images = [np.ascontiguousarray(image[:, ::-1]),
                  *corner_views(image, w, h, getattr(self.embedder, "resize", "center-crop"))]
        made = []
        for kind, view in zip((MIRROR, *CORNERS), images, strict=True):
            with self._inference:
                made.append((kind, self.embedder.embed(view)))
        return made

    def predict(self, embedding: np.ndarray, mirror: np.ndarray | None = None) -> Prediction:
        """Classify an embedding; with a mirror embedding, the mean of the two."""
        if mirror is not None:
            both = embedding + mirror
            embedding = both / max(float(np.linalg.norm(both)), 1e-12)
        refitter = self.refitter
        head, features = (refitter.head, refitter.transform) if refitter is not None else (None, RAW)
        return self.store.predict(embedding, self.classifier, head=head, features=features)

    def embed_and_predict(self, image: np.ndarray) -> tuple[np.ndarray, Prediction]:
        embedding, mirror = self.embed_views(image)
        return embedding, self.predict(embedding, mirror)

    def describe(self) -> dict[str, object]:
        """What classifies, as in effect (for the stats topic)."""
        c, views = self.classifier, self.views
        out: dict[str, object] = {"method": c.method, "views": views, "views_cost": VIEW_COST[views],
                               "unknown_threshold": c.unknown_threshold}
        if c.method == "logreg" and self.refitter is not None:
            head = self.refitter.head
            out["features"] = self.refitter.transform.id
            out["head_current"] = head is not None and head.version == self.store.version
            if head is not None:
                out["head_rows"] = head.rows
                out["refit_ms"] = round(head.seconds * 1e3, 1)
            if self.refitter.last_error:
                out["refit_error"] = self.refitter.last_error
        return out
