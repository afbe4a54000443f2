"""The device's own web page and HTTP API, beside the pipeline.

    auth.py     the password hash, the token, who may write (pure but the file I/O)
    frames.py   JPEG frames for the live view: only while watched, newest frame, bounded rate
    live.py     the newest prediction and detections (a processing-loop hook), the status
    metrics.py  /metrics through prometheus_client, read at scrape time
    api.py      the MQTT verbs over HTTP: the same parser and dispatcher as MQTT
    app.py      the Starlette app: routes, sessions, streams
    server.py   uvicorn on its own thread
    static/     the page: HTML, CSS and JS served as they are (no build step, no CDN)

:class:`WebSite` puts them together from the ``[web]`` config; the daemon adds
its ``live.on_frame`` to the processing loop's hooks, starts it after the
pipeline and stops it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeknn.config import WebConfig
from edgeknn.mqtt.commands import CommandTarget
from edgeknn.results import Detection
from edgeknn.store import Store
from edgeknn.web.app import Access, Parts
from edgeknn.web.frames import JpegFrames
from edgeknn.web.live import LiveView, Status
from edgeknn.web.metrics import Metrics
from edgeknn.web.server import WebError, WebServer

__all__ = ["LiveView", "Status", "WebError", "WebServer", "WebSite"]


class WebSite:
    """The web server with everything it serves; ``frames`` is the pipeline's FrameSlot."""

    def __init__(self, config: WebConfig, *, target: CommandTarget, store: Store, frames: Any,
                 status: Callable[[], Status], detections: Callable[[], list[Detection]] | None,
                 hold_time: float, record_rate: float) -> None:
        self.metrics = Metrics(status, store.counts)
        self.live = LiveView(detections=detections, observe=self.metrics.observe_inference_ms)
        self.frames = JpegFrames(lambda: frames.latest, max_fps=config.stream_fps,
                                 max_side=config.stream_size, quality=config.jpeg_quality)
        parts = Parts(target, store, self.frames, self.live, status, self.metrics, hold_time, record_rate)
        rules = Access(config.password_file, config.token, config.anonymous_writes,
                       config.protect_reads, config.secure_cookie)
        self.server = WebServer(parts, rules, host=config.host, port=config.port)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self, timeout: float = 1.5) -> None:
        self.server.stop(timeout)
