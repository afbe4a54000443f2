"""``/metrics``: the service's figures in Prometheus' text format, via prometheus_client.

A private :class:`~prometheus_client.CollectorRegistry` per server (no
process-global registry): the inference-time histogram is observed per frame
by the live view; everything else is read from the service at scrape time by
:class:`ServiceCollector`, so scraping costs the pipeline nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgeknn.web.live import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Edge TPU embeddings take ~3-10 ms, CPU ones 20-200 ms on a Pi.
LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class ServiceCollector(Collector):
    def __init__(self, status: Callable[[], Status], counts: Callable[[], Mapping[str, int]]) -> None:
        self._status = status
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        s = status.stats
        yield CounterMetricFamily("edgeknn_frames_processed", "frames embedded and classified",
                                  value=status.frames_processed)
        yield CounterMetricFamily("edgeknn_frames_dropped", "frames dropped because a newer one came first",
                                  value=s.dropped_frames)
        yield GaugeMetricFamily("edgeknn_fps", "processed frames per second (recent)", value=s.fps)
        yield GaugeMetricFamily("edgeknn_store_examples", "examples in the store", value=s.store_size)
        per_class = GaugeMetricFamily("edgeknn_class_examples", "examples per class", labels=["label"])
        for label, count in sorted(self._counts().items()):
            per_class.add_metric([label], count)
        yield per_class
        yield GaugeMetricFamily("edgeknn_mqtt_connected", "1 while connected to the MQTT broker",
                                value=1.0 if status.mqtt == "connected" else 0.0)
        yield GaugeMetricFamily("edgeknn_camera_ok", "1 while the camera delivers frames",
                                value=1.0 if status.camera == "ok" else 0.0)
        yield GaugeMetricFamily("edgeknn_uptime_seconds", "seconds since the service started",
                                value=s.uptime_s)
        info = GaugeMetricFamily("edgeknn_info", "version and backend", labels=["version", "backend"])
        info.add_metric([status.version, status.backend], 1.0)
        yield info


class Metrics:
    def __init__(self, status: Callable[[], Status], counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.inference = Histogram("edgeknn_inference_seconds", "embedding + KNN time per frame",
                                   buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.registry.register(ServiceCollector(status, counts))

    def observe_inference_ms(self, ms: float) -> None:
        self.inference.observe(ms / 1e3)

    def render(self) -> bytes:
        return generate_latest(self.registry)
