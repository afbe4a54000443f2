"""Camera sources: one module per source, chosen by ``[camera] source``.

    cam = make_camera(cfg.camera, model_size=(224, 224))      # not opened yet
    cam = RetryingCamera(cam, stop=stop, on_state=publish,
                         backoff=Backoff(cfg.camera.retry_initial, cfg.camera.retry_max))
    cam.open(); frame = cam.read(); cam.close()

``picamera2`` and ``cv2`` are imported by their adapters' ``open`` only, so
the other sources (and every test) work without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgeknn.cameras.base import Camera, CameraStopped, EndOfStream, Pacer, Sleep
from edgeknn.cameras.fake import FakeCamera
from edgeknn.cameras.opencv import OpenCvCamera
from edgeknn.cameras.picam import PiCamera
from edgeknn.cameras.replay import ReplayCamera
from edgeknn.cameras.retry import Backoff, RetryingCamera
from edgeknn.cameras.synthetic import SyntheticCamera

if TYPE_CHECKING:
    from edgeknn.config import CameraConfig

__all__ = [
    "Backoff", "Camera", "CameraStopped", "EndOfStream", "FakeCamera", "OpenCvCamera",
    "Pacer", "PiCamera", "ReplayCamera", "RetryingCamera", "SOURCES", "SyntheticCamera",
    "make_camera",
]


def _synthetic(cfg: CameraConfig, model_size: tuple[int, int] | None, sleep: Sleep) -> Camera:
    return SyntheticCamera(cfg.width, cfg.height, cfg.fps, sleep=sleep)


def _replay(cfg: CameraConfig, model_size: tuple[int, int] | None, sleep: Sleep) -> Camera:
    # camera.path is never empty here: the config schema requires it for "replay".
    return ReplayCamera(Path(cfg.path), fps=cfg.fps, loop=cfg.loop, sleep=sleep)


def _opencv(cfg: CameraConfig, model_size: tuple[int, int] | None, sleep: Sleep) -> Camera:
    return OpenCvCamera(cfg.path, fps=cfg.fps, loop=cfg.loop, width=cfg.width, height=cfg.height,
                        sleep=sleep)


def _picamera2(cfg: CameraConfig, model_size: tuple[int, int] | None, sleep: Sleep) -> Camera:
    return PiCamera(cfg.width, cfg.height, fps=cfg.fps, lores=cfg.lores, model_size=model_size)


_BUILDERS: dict[str, Callable[[CameraConfig, tuple[int, int] | None, Sleep], Camera]] = {
    "picamera2": _picamera2, "opencv": _opencv, "replay": _replay, "synthetic": _synthetic,
}
SOURCES = tuple(_BUILDERS)
"""The values of ``camera.source`` (the config schema takes its choices from here)."""


def make_camera(
    cfg: CameraConfig, model_size: tuple[int, int] | None = None, *, sleep: Sleep = time.sleep
) -> Camera:
    """The camera ``cfg.source`` names, configured but not opened.

    ``sleep`` paces replayed and synthetic frames; pass a stop event's ``wait``
    so a paced read returns at once on shutdown.
    """
    return _BUILDERS[cfg.source](cfg, model_size, sleep)
