"""The web server with everything it serves, built from the ``[web]`` config."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from edgeknn.config import WebConfig
from edgeknn.mqtt.commands import CommandTarget
from edgeknn.results import Detection
from edgeknn.store import Store
from edgeknn.web.app import Parts, Rules
from edgeknn.web.frames import JpegFrames
from edgeknn.web.live import LiveView, Status
from edgeknn.web.metrics import Metrics
from edgeknn.web.server import WebServer

if TYPE_CHECKING:
    from edgeknn.service.engine import FrameSource


class WebSite:
    """The web server with everything it serves; ``frames`` is the pipeline's FrameSlot."""

    def __init__(self, config: WebConfig, *, target: CommandTarget, store: Store, frames: FrameSource,
                 status: Callable[[], Status], detections: Callable[[], list[Detection]] | None,
                 is_processing: Callable[[], bool], hold_time: float, record_rate: float) -> None:
        self.metrics = Metrics(status, store.counts)
        self.live = LiveView(detections=detections, observe=self.metrics.observe_inference_ms)
        self.frames = JpegFrames(lambda: frames.latest, max_fps=config.stream_fps,
                                 max_side=config.stream_size, quality=config.jpeg_quality)
        parts = Parts(target, store, self.frames, self.live, status, self.metrics, is_processing,
                      hold_time, record_rate)
        rules = Rules(config.password_file, config.token, config.anonymous_writes,
                       config.protect_reads, config.secure_cookie)
        self.server = WebServer(parts, rules, host=config.host, port=config.port)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self, timeout: float = 1.5) -> None:
        self.server.stop(timeout)
