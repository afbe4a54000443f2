"""`edgeknn bench pipeline`: the real daemon on a replay source, against a real broker.

Prints, from one run: the raw model invoke rate (the interpreter alone, input
already set), the end-to-end processed-frame rate of the daemon, their ratio,
and the latency from frame capture to the prediction arriving at an MQTT
subscriber (p50/p95).  The replay shows each object for 1/5 s, every image
is taught as its own class, and predictions are published as the daemon does
by default: when the smoothed label changes, else once a second.  With ``--detector`` the detector runs beside the
embedder and its own rate and share of the loop are printed too.  A second pass
runs with the web page on and one client (a separate process, as a phone would
be) watching the MJPEG live view: its end-to-end rate is printed beside the plain one.

A benchmark, not a test: it prints numbers and judges nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeknn.cameras import ReplayCamera
from edgeknn.cameras.replay import folder_images
from edgeknn.config import EmbedderConfig, ModelsConfig, parse_config
from edgeknn.images import fit, load_image
from edgeknn.service.daemon import Daemon
from edgeknn.tools.devbroker import LocalBroker
from edgeknn.vision.detector import Detector
from edgeknn.vision.engines import embedder_from_config


def invoke_rate(interpreter: Any, seconds: float) -> float:
    """Invocations per second of an interpreter whose input is already set."""
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    interpreter.invoke()  # warm-up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        interpreter.invoke()
        count += 1
    return count / (time.perf_counter() - started)


def listen(host: str, port: int, topic: str) -> None:
    """Run as a separate process (so its work does not slow the daemon under test):
    collect prediction latencies until stdin closes, then print them as JSON."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    latencies: list[float] = []

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        arrived = time.time()
        ts = json.loads(message.payload)["ts"]
        latencies.append((arrived - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()) * 1e3)

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    client.subscribe(topic)
    subscribed.wait(10)
    print("ready", flush=True)
    for line in sys.stdin:  # "reset" drops the warm-up; end of input stops
        if line.strip() == "reset":
            latencies.clear()
    client.loop_stop()
    print(json.dumps(latencies), flush=True)


def watch_stream(url: str) -> None:
    """Run as a separate process, as a phone watching the live view: read the MJPEG stream
    until stdin closes, then print how many frames arrived (after the last "reset")."""
    import urllib.request

    counted = threading.Event()
    frames = [0]

    def read() -> None:
        with urllib.request.urlopen(url, timeout=30) as stream:
            counted.set()
            while chunk := stream.readline():
                if chunk.startswith(b"--edgeknnframe"):
                    frames[0] += 1

    threading.Thread(target=read, daemon=True).start()
    counted.wait(30)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            frames[0] = 0
    print(json.dumps(frames[0]), flush=True)


class Subprocess:
    """A helper process of this module: prints "ready", takes "reset", prints one JSON value at the end."""

    def __init__(self, *args: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edgeknn.tools.bench_pipeline", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "ready"

    def reset(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("reset\n")
        self._proc.stdin.flush()

    def result(self) -> Any:
        out, _ = self._proc.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


class LatencyListener(Subprocess):
    """The subscriber process: latency = arrival time - capture time ("ts") of each prediction."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        super().__init__(host, str(port), topic)

    def latencies(self) -> list[float]:
        return list(self.result())


def model_sized_frames(frames: Path, size: tuple[int, int], into: Path) -> Path:
    """The frames as the Pi camera's ISP delivers them with ``lores``: at the model's size."""
    into.mkdir()
    for path in folder_images(frames):
        fitted, _ = fit(load_image(path), size[0], size[1], "center-crop")
        Image.fromarray(fitted).save(into / f"{path.stem}.png")
    return into


CHANGES_PER_SECOND = 5  # how often the replayed scene switches to another object


def scene_changes(frames: Path, repeat: int) -> list[Path]:
    """Each image held for ``repeat`` frames, as an object held in front of the camera."""
    return [path for path in folder_images(frames) for _ in range(max(1, repeat))]


def teach_every_frame(daemon: Daemon, frames: Path) -> None:
    """Each replayed image becomes an example of its own class, so every frame is a real
    prediction over a taught store (and the predicted label changes with every frame)."""
    assert daemon.teacher is not None
    for path in folder_images(frames):
        daemon.teacher.add(path.stem.split("_")[0], image=load_image(path))


def run(frames: Path, *, seconds: float = 10.0, threads: int = 0, detector: bool = False,
        detector_accelerator: str = "auto", detector_every: int = 1, models_dir: Path | None = None,
        mirror: str | None = None) -> dict[str, Any]:
    """Three passes: frames at the model's input size (as the Pi camera's ISP delivers
    them); the same with the web page on and one client watching its live view; then
    frames at their own size (the CPU resizes each frame)."""
    with tempfile.TemporaryDirectory(prefix="edgeknn-bench-") as tmp, LocalBroker() as broker:
        models_dir = models_dir or Path(tmp) / "models"
        probe = embedder_from_config(EmbedderConfig(threads=threads),
                                     ModelsConfig(dir=models_dir, mirror=mirror or ""))
        raw = invoke_rate(probe.interpreter, min(seconds, 5.0))
        sized = model_sized_frames(frames, probe.input_size, Path(tmp) / "frames")
        del probe
        options: dict[str, Any] = dict(
            raw=raw, seconds=seconds, threads=threads, detector=detector,
            detector_accelerator=detector_accelerator, detector_every=detector_every,
            models_dir=models_dir, mirror=mirror, broker=broker,
        )
        result = _pass(sized, Path(tmp) / "a.db", **options)
        # right after the plain pass, so that both see the same machine load
        watched = _pass(sized, Path(tmp) / "c.db", **options, stream_client=True)
        original = _pass(frames, Path(tmp) / "b.db", **options)
        result["original_size_fps"] = original["end_to_end_fps"]
        result["original_size_ratio"] = original["ratio"]
        result["stream_client_fps"] = watched["end_to_end_fps"]
        result["stream_client_ratio"] = watched["ratio"]
        result["stream_frames_per_s"] = watched["stream_frames_per_s"]
        return result


def _pass(frames: Path, store: Path, *, raw: float, seconds: float, threads: int, detector: bool,
          detector_accelerator: str, detector_every: int, models_dir: Path, mirror: str | None,
          broker: LocalBroker, stream_client: bool = False) -> dict[str, Any]:
    """One run; with ``stream_client`` the web page is on and one client watches its live view."""
    config = parse_config({
        "device_id": "bench",
        "store": {"path": str(store)},
        "models": {"dir": str(models_dir), "mirror": mirror or ""},
        "embedder": {"threads": threads},
        # the default publishing policy: on every change of the smoothed label, else each second
        "pipeline": {"prediction_interval": 1.0, "stats_interval": 3600},
        "mqtt": {"host": broker.host, "port": broker.port},
        "detector": {"enabled": detector, "accelerator": detector_accelerator, "threshold": 0.3,
                     "every_n_frames": detector_every},
        "web": {"enabled": stream_client, "host": "127.0.0.1", "port": 0},  # the defaults otherwise
    }, "bench config")
    # Paced at 1.2 x the raw rate, so the loop never waits for a frame; unpaced,
    # the replay thread would spin holding the GIL, which no real camera does.
    camera = ReplayCamera(scene_changes(frames, int(raw / CHANGES_PER_SECOND)), fps=1.2 * raw,
                          loop=True, preload=True)
    daemon = Daemon(config, camera=camera)
    daemon.start()
    teach_every_frame(daemon, frames)
    listener = LatencyListener(broker.host, broker.port, daemon.topics.prediction)
    viewer = None
    if stream_client:
        assert daemon.web is not None, "the web server did not start"
        viewer = Subprocess("stream", daemon.web.url + "/stream.mjpeg")
    try:
        assert daemon.engine is not None and daemon.processor is not None
        time.sleep(1.0)  # warm-up: caches, threads, first connections
        listener.reset()
        if viewer:
            viewer.reset()
        proc, stage = daemon.processor, daemon.detection
        start_frames, start_runs = proc.processed, stage.runs if stage else 0
        start_det_s = stage.seconds if stage else 0.0
        started = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - started
        processed = proc.processed - start_frames
        det_runs = (stage.runs - start_runs) if stage else 0
        det_seconds = (stage.seconds - start_det_s) if stage else 0.0
        latencies = listener.latencies()
        streamed = viewer.result() if viewer else 0
        backend = daemon.engine.embedder.info.backend
        opened_detector = daemon.engine.detector
    finally:
        listener.close()
        if viewer:
            viewer.close()
        daemon.stop()
    result: dict[str, Any] = {
        "backend": backend,
        "raw_invoke_fps": raw,
        "end_to_end_fps": processed / elapsed,
        "ratio": processed / elapsed / raw,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
        "published": len(latencies),
        "dropped_frames": daemon.slot.dropped,
        "stream_frames_per_s": streamed / elapsed,
    }
    if stage:
        assert isinstance(opened_detector, Detector)  # the real one: its interpreter is timed alone
        result.update({
            "detector_backend": opened_detector.opened.backend,
            "detector_raw_invoke_fps": invoke_rate(opened_detector.opened.interpreter, min(seconds, 5.0)),
            "detector_fps": det_runs / elapsed,
            "detector_share": det_seconds / elapsed,
        })
    return result


def report(r: dict[str, Any]) -> str:
    lines = [
        f"pipeline benchmark ({r['backend']}, real mosquitto on loopback)",
        f"  raw invoke rate         {r['raw_invoke_fps']:8.1f} frames/s  (interpreter alone)",
        f"  end-to-end rate         {r['end_to_end_fps']:8.1f} frames/s  (camera -> embed -> KNN -> MQTT)",
        f"  ratio                   {r['ratio'] * 100:8.1f} %        (target >= 90 % without detector)",
        f"    (frames at the model's input size, as the Pi camera's ISP delivers them; at their own size,"
        f" resized on the CPU: {r['original_size_fps']:.1f} frames/s, {r['original_size_ratio'] * 100:.1f} %)",
    ]
    if "stream_client_fps" in r:
        lines.append(f"  with one live-view client {r['stream_client_fps']:6.1f} frames/s  "
                     f"({r['stream_client_ratio'] * 100:.1f} % of raw; the stream delivered "
                     f"{r['stream_frames_per_s']:.1f} JPEG frames/s; web.stream_fps caps it)")
    if r["latency_p50_ms"] is not None:
        lines.append(f"  capture -> subscriber   p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms "
                     f"({r['published']} predictions)")
    if "detector_fps" in r:
        fair = r["raw_invoke_fps"] * (1 - r["detector_share"])
        lines += [
            f"  detector ({r['detector_backend']})  raw {r['detector_raw_invoke_fps']:.1f}/s, "
            f"ran {r['detector_fps']:.1f}/s, {r['detector_share'] * 100:.1f} % of the loop's time",
            f"  embedder if it lost only the detector's share: {fair:.1f} frames/s (raw x (1 - share)); "
            f"measured {r['end_to_end_fps']:.1f} ({r['end_to_end_fps'] / fair * 100:.0f} %)",
        ]
        if r["backend"] == "edgetpu" and r["detector_backend"] == "edgetpu":
            lines.append("  both models on one Edge TPU: unless co-compiled, each switch reloads "
                         "parameters (see docs/two-models-one-tpu.md)")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "stream":
        watch_stream(sys.argv[2])
    else:
        listen(sys.argv[1], int(sys.argv[2]), sys.argv[3])
