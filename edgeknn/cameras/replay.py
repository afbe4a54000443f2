"""Replay recorded frames as a camera: an image folder, a list of images, or a video file.

Images play in name order (a folder) or the given order (a list), paced to
``fps`` (0 = as fast as they are read), looping or ending with
:class:`EndOfStream`.  A folder must hold only images (hidden files aside):
anything else is an error that names the file, as is an image that does not
decode, because a replay that silently skips frames tests something other than
what was recorded.  Video files go through the OpenCV adapter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeknn.cameras.base import Clock, EndOfStream, Pacer, Sleep
from edgeknn.cameras.opencv import OpenCvCamera
from edgeknn.errors import CameraError, ImageError
from edgeknn.images import IMAGE_SUFFIXES, load_image


def folder_images(folder: Path) -> list[Path]:
    """The images of a replay folder in name order; CameraError naming anything else there."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise CameraError(f"replay folder {folder}: cannot list ({exc.strerror or exc})") from None
    for p in entries:
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
            raise CameraError(
                f"replay folder {folder}: {p.name} is not an image file "
                f"(expected {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
    if not entries:
        raise CameraError(f"replay folder {folder} has no images")
    return entries


class ReplayCamera:
    """Plays ``source``: a folder of images, a video file, or a sequence of image paths."""

    def __init__(
        self, source: Path | str | Sequence[Path], *, fps: float = 0.0, loop: bool = True,
        clock: Clock = time.monotonic, sleep: Sleep = time.sleep, preload: bool = False,
    ) -> None:
        """``preload`` decodes every image once at open and replays them from memory
        (for benchmarks, so that JPEG decoding is not measured as pipeline cost)."""
        if isinstance(source, str | Path):
            self._source: Path | None = Path(source)
            self._given: list[Path] = []
            self.name = f"replay {source}"
        else:
            self._source = None
            self._given = [Path(p) for p in source]
            if not self._given:
                raise CameraError("replay: the list of images is empty")
            self.name = f"replay of {len(self._given)} images"
        self.fps, self.loop = fps, loop
        self._clock, self._sleep = clock, sleep
        self._pacer = Pacer(fps, clock, sleep)
        self._paths: list[Path] | None = None
        self._video: OpenCvCamera | None = None
        self._position = 0
        self._preload = preload
        self._decoded: list[np.ndarray] = []

    def open(self) -> None:
        self.close()
        source = self._source
        if source is None:
            self._paths = list(self._given)
        elif source.is_dir():
            self._paths = folder_images(source)
        elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
            self._paths = [source]
        elif source.is_file():
            video = OpenCvCamera(str(source), fps=self.fps, loop=self.loop,
                                 clock=self._clock, sleep=self._sleep)
            video.open()
            self._video = video
        else:
            raise CameraError(f"replay source {source} does not exist (an image folder or video)")
        self._position = 0
        self._pacer.reset()
        if self._preload and self._paths:
            once = {p: self._load(p) for p in dict.fromkeys(self._paths)}  # a path listed twice is decoded once
            self._decoded = [once[p] for p in self._paths]

    def read(self) -> np.ndarray:
        if self._video is not None:
            return self._video.read()
        if self._paths is None:
            raise CameraError(f"{self.name}: read before open")
        if self._position == len(self._paths):
            if not self.loop:
                raise EndOfStream(f"{self.name}: ended after {len(self._paths)} frames")
            self._position = 0
        if self._decoded:
            image = self._decoded[self._position]
        else:
            image = self._load(self._paths[self._position])
        self._position += 1
        self._pacer.wait()
        return image

    def _load(self, path: Path) -> np.ndarray:
        try:
            return load_image(path)
        except ImageError as exc:  # its message names the file
            raise CameraError(f"{self.name}: {exc}") from None

    def close(self) -> None:
        self._decoded = []
        if self._video is not None:
            self._video.close()
            self._video = None
        self._paths = None
