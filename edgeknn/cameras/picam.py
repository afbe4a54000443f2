"""The Raspberry Pi camera through picamera2 (libcamera).

``picamera2`` (and ``libcamera``) are imported in :meth:`PiCamera.open` only:
they exist only on Raspberry Pi OS (``apt install python3-picamera2``; a venv
needs ``--system-site-packages`` to see them).

Streams: a "main" stream at width x height in ``BGR888`` (which numpy sees as
RGB, see :mod:`edgeknn.cameras.yuv`), and, when ``lores`` is on and the model's
input size is known, a "lores" stream that the ISP scales to just cover the
model's input, so the CPU never resizes a full frame.  On a Pi 4 the lores
stream can only be YUV420, so it is converted here; the colour space is set
to sYCC (full-range BT.601) so the conversion is JPEG's.  Frames come from
the lores stream when there is one, else from main.

Off a Pi the pure parts (YUV420 conversion, format order, lores size) are
tested in tests/test_cameras.py, and the job queue, stalls and import
failures against tests/stubs/picamera2, which imitates picamera2's own
(tests/test_picamera2.py); the image pipeline itself needs a check on a device.
Needs picamera2 >= 0.3.20: ``wait(job, timeout)`` (0.3.17) bounds a read, and
``cancel_all_and_flush()`` (0.3.20) lets a stalled camera be closed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgeknn.cameras.yuv import MAIN_FORMAT, lores_size, main_to_rgb, yuv420_to_rgb
from edgeknn.errors import CameraError

log = logging.getLogger(__name__)

# How long a frame may take before the camera counts as stalled (a ribbon
# cable fault or a crashed ISP leaves capture waiting forever otherwise).
MIN_FRAME_TIMEOUT = 2.0


class PiCamera:
    def __init__(
        self, width: int, height: int, *, fps: float, lores: bool,
        model_size: tuple[int, int] | None = None, camera_num: int = 0,
    ) -> None:
        self.name = f"picamera2 {camera_num}"
        self.width, self.height = width - width % 2, height - height % 2  # ISP: even sizes
        self.fps = fps
        self.use_lores = lores
        self.model_size = model_size
        self.camera_num = camera_num
        self.timeout = max(MIN_FRAME_TIMEOUT, 5.0 / fps)
        self._cam: Any = None
        self._stream = "main"
        self._size = (self.width, self.height)
        self._format = MAIN_FORMAT

    def set_model_size(self, width: int, height: int) -> None:
        """Hint: the model's input size, for the lores stream (takes effect at the next open)."""
        self.model_size = (width, height)

    def open(self) -> None:
        self.close()
        Picamera2, ColorSpace = import_picamera2()
        lores = None
        if self.use_lores and self.model_size:
            lores = lores_size((self.width, self.height), self.model_size)
        frame_us = int(1_000_000 / self.fps)
        try:
            cam = self._cam = Picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": MAIN_FORMAT},
                lores={"size": lores, "format": "YUV420"} if lores else None,
                colour_space=ColorSpace.Sycc(),
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                display=None, encode=None,
            )
            cam.configure(config)
            self._stream = "lores" if lores else "main"
            # libcamera may adjust sizes (alignment); read back what it chose.
            chosen = cam.camera_config[self._stream]
            self._size = tuple(chosen["size"])
            self._format = chosen["format"]
            cam.start()
        except Exception as exc:  # picamera2 raises RuntimeError/IndexError/OSError alike
            self.close()
            raise CameraError(f"{self.name}: cannot open ({exc}); is the camera connected "
                              "and enabled, and no other program using it?") from None
        log.info("%s: %s stream %dx%d %s", self.name, self._stream, *self._size, self._format)

    def read(self) -> np.ndarray:
        cam = self._cam
        if cam is None:
            raise CameraError(f"{self.name}: read before open")
        try:
            job = cam.capture_array(self._stream, wait=False)
            array = cam.wait(job, timeout=self.timeout)
        except TimeoutError:
            raise CameraError(f"{self.name}: no frame within {self.timeout:g} s") from None
        except Exception as exc:  # the vendor's errors stop here
            raise CameraError(f"{self.name}: capture failed ({exc})") from None
        w, h = self._size
        if self._stream == "lores":
            return yuv420_to_rgb(array, w, h, "sycc")
        return main_to_rgb(array, self._format)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        # After a timed-out wait the capture job is still queued, and stop()
        # would queue behind it and wait forever: cancel it first.
        for step in (cam.cancel_all_and_flush, cam.stop, cam.close):
            try:
                step()
            except Exception as exc:  # closing a camera that already failed: nothing to do
                log.debug("%s: %s: %s", self.name, step.__name__, exc)


def import_picamera2() -> tuple[Any, Any]:
    """``Picamera2`` and libcamera's ``ColorSpace``, or a CameraError that says how to fix it."""
    try:
        from libcamera import ColorSpace
        from picamera2 import Picamera2
    except ImportError:
        raise CameraError(
            "picamera2 is not installed: on Raspberry Pi OS run "
            "`sudo apt install python3-picamera2` and make the venv with "
            "--system-site-packages"
        ) from None
    except ValueError as exc:  # a compiled module built against another numpy
        import numpy

        raise CameraError(
            f"picamera2 does not import with numpy {numpy.__version__} ({exc}): Raspberry Pi OS's "
            "picamera2 and simplejpeg are built against numpy 1.x; install numpy<2 in the venv "
            "(pip install 'numpy<2'; the Ansible role does)"
        ) from None
    if not hasattr(Picamera2, "cancel_all_and_flush"):
        raise CameraError(
            f"picamera2 {_version()} is too old: edgeknn needs 0.3.20 or newer (wait(job, timeout), "
            "cancel_all_and_flush()); run `sudo apt install --only-upgrade python3-picamera2`"
        )
    return Picamera2, ColorSpace


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("picamera2")
    except PackageNotFoundError:
        return "(version unknown)"
