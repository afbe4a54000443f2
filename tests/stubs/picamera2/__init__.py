"""A stand-in for picamera2 that behaves like the real one where edgeknn depends on it.

Imitated from raspberrypi/picamera2 (picamera2/picamera2.py, picamera2/job.py):

* the job queue: ``capture_array(wait=False)`` appends a Job to ``_job_list``
  (``dispatch_functions``); jobs run in order when a frame completes
  (``process_requests``: ``while self._job_list: if not job.execute(): break``),
  so a capture job that never gets a frame blocks every job behind it;
* ``wait(job, timeout)`` is ``job.get_result(timeout)``, a Future's
  ``result(timeout)``: ``TimeoutError`` when no frame came (0.3.17+);
* ``stop()`` with the event loop running dispatches ``stop_`` as one more job
  with ``wait=True`` and no timeout (``Picamera2.stop``): behind a stale
  capture job it waits forever;
* ``cancel_all_and_flush()`` (0.3.20+) cancels and drops every queued job;
* with ``EDGEKNN_STUB_PICAMERA2=numpy2`` the import fails as Debian's
  picamera2 does under numpy 2 (encoders/jpeg_encoder.py ``import simplejpeg``:
  ``ValueError: numpy.dtype size changed``, raspberrypi/picamera2 #1088, #1211);
* with ``EDGEKNN_STUB_PICAMERA2=0.3.16`` it is a version before both: no
  ``cancel_all_and_flush``, and ``wait(job)`` takes no timeout.

``STUB.delivering`` (a threading.Event) is the camera: set, frames complete;
cleared, the sensor has stopped (a loose ribbon cable).
"""

import os
import threading
from concurrent.futures import CancelledError, Future, TimeoutError  # noqa: A004 - as picamera2 re-exports it

import numpy as np

MODE = os.environ.get("EDGEKNN_STUB_PICAMERA2", "")
if MODE == "numpy2":
    raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. "
                     "Expected 96 from C header, got 88 from PyObject")


class _Stub:
    def __init__(self) -> None:
        self.delivering = threading.Event()
        self.delivering.set()
        self.opened = 0


STUB = _Stub()
__all__ = ["STUB", "CancelledError", "Picamera2", "TimeoutError"]


class Job:
    def __init__(self, function) -> None:
        self._function = function
        self._future: Future = Future()
        self._future.set_running_or_notify_cancel()

    def execute(self) -> bool:
        done, result = self._function()
        if done:
            self._future.set_result(result)
        return done

    def get_result(self, timeout=None):
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        STUB.opened += 1
        self.lock = threading.Lock()
        self._job_list: list[Job] = []
        self.started = False
        self.camera_config: dict = {}

    def create_video_configuration(self, main=None, lores=None, **kwargs) -> dict:
        return {"main": dict(main), "lores": dict(lores) if lores else None}

    def configure(self, config: dict) -> None:
        self.camera_config = {k: v for k, v in config.items() if v is not None}

    def start(self) -> None:
        self.started = True

    def _process_requests(self) -> None:
        with self.lock:
            while self._job_list:
                if not self._job_list[0].execute():
                    break
                self._job_list.pop(0)

    def _capture_array_(self, name: str):
        if not STUB.delivering.is_set():
            return (False, None)
        w, h = self.camera_config[name]["size"]
        return (True, np.full((h, w, 3), 128, np.uint8))

    def capture_array(self, name="main", wait=None):
        job = Job(lambda: self._capture_array_(name))
        with self.lock:
            self._job_list.append(job)
        self._process_requests()
        return job if wait is False else job.get_result()

    def stop_(self):
        self.started = False
        return (True, None)

    def stop(self) -> None:
        if not self.started:
            return
        job = Job(self.stop_)
        with self.lock:
            self._job_list.append(job)
        self._process_requests()
        job.get_result()  # wait=True: no timeout

    def close(self) -> None:
        self.stop()

    if MODE == "0.3.16":
        def wait(self, job):
            return job.get_result()
    else:
        def wait(self, job, timeout=None):
            return job.get_result(timeout=timeout)

        def cancel_all_and_flush(self) -> None:
            with self.lock:
                for job in self._job_list:
                    job.cancel()
                self._job_list = []
