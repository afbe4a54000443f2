"""The config tree: one frozen dataclass per TOML table, defaults and rules beside each key.

``edgeknn/config.example.toml`` documents every key; tests check that it
parses to exactly these defaults and names every field.

A rule that belongs to the part using a value is imported from that part, not
restated: classifier methods from :mod:`edgeknn.classify`, teach targets from
:mod:`edgeknn.mqtt.commands`, the base topic and device id rules from
:mod:`edgeknn.mqtt.topics`, camera sources from :mod:`edgeknn.cameras`,
accelerators and Edge TPU devices from :mod:`edgeknn.vision.runtime`, labels
from :mod:`edgeknn.labels`, pin factories from :mod:`edgeknn.gpio`.  The parts that read the config take their frozen
section and do not check it again, so ``edgeknn config check`` accepts exactly
what the service starts with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeknn.cameras import SOURCES as CAMERA_SOURCES
from edgeknn.classify import METHODS
from edgeknn.config import checks
from edgeknn.config.validate import section, setting
from edgeknn.gpio import PIN_FACTORIES
from edgeknn.head import VIEWS
from edgeknn.images import MAX_PIXELS, RESIZE_POLICIES
from edgeknn.mqtt.commands import TARGETS as TEACH_TARGETS
from edgeknn.vision.runtime import ACCELERATORS

At = Callable[[str], str]  # relative key -> full key path, for cross-key problems

LOG_LEVELS = ("debug", "info", "warning", "error")
PIN_RULE = {"check": checks.pin, "expect": checks.PIN_EXPECT}
OPTIONAL_PIN_RULE = {"check": checks.optional_pin, "expect": checks.PIN_EXPECT + ' or ""'}


@dataclass(frozen=True)
class StoreConfig:
    path: Path = setting(Path("/var/lib/edgeknn/store.db"), "the SQLite file of taught examples")


@dataclass(frozen=True)
class ModelsConfig:
    dir: Path = setting(Path("/var/lib/edgeknn/models"), "where fetched models are kept")
    mirror: str = setting("", "a directory or URL that replaces the download base")


@dataclass(frozen=True)
class EmbedderConfig:
    model: str = setting("mobilenet_v1_embedder", "a manifest name or a .tflite path",
                         check=checks.non_empty)
    edgetpu_model: str = setting("", "its Edge TPU variant; empty = the manifest's")
    embedding_tensor: str = setting("", "tensor to read; empty = the manifest's / model's output")
    accelerator: str = setting("auto", "where to run", choices=ACCELERATORS)
    device: str = setting("", "Edge TPU device: usb, usb:0, pci:0; empty = first",
                          check=checks.tpu_device)
    threads: int = setting(0, "CPU threads; 0 = all cores", min=0, max=64)
    resize: str = setting("center-crop", "how frames fit the model input",
                          choices=RESIZE_POLICIES)


@dataclass(frozen=True)
class ClassifierConfig:
    k: int = setting(3, "neighbours that vote", min=1, max=100)
    method: str = setting("logreg", "voting method", choices=METHODS)
    # logreg: the cosine to the winning class's mean feature.  On the shared sets
    # (5 shots) 95 % of held-out photos of taught classes score above 0.30, photos
    # of never-taught sets a median of 0.02 (tests/test_fewshot_accuracy.py).
    unknown_threshold: float = setting(0.25, "cosine similarity below which a frame is "
                                       "unknown (logreg: to the winning class's mean feature)",
                                       min=-1.0, max=1.0)
    views: str = setting("auto", "extra views of taught frames for the head: auto = "
                         "mirror on the Edge TPU, crops on the CPU", choices=VIEWS)
    smoothing: int = setting(4, "majority over the last N predictions", min=1, max=100)


@dataclass(frozen=True)
class CameraConfig:
    source: str = setting("synthetic", "where frames come from", choices=CAMERA_SOURCES)
    path: str = setting("", "replay: image folder or video; opencv: device, file or URL")
    fps: float = setting(10.0, "frames per second asked for", above=0.0, max=120.0)
    loop: bool = setting(True, "replay and video files: start again at the end")
    width: int = setting(640, "frame width asked for", min=16, max=8192)
    height: int = setting(480, "frame height asked for", min=16, max=8192)
    lores: bool = setting(True, "picamera2: have the ISP scale frames to the model's size; "
                          "off while the detector runs (it reads full-size frames)")
    retry_initial: float = setting(1.0, "first wait (s) before reopening a failed camera",
                                   above=0.0, max=3600.0)
    retry_max: float = setting(30.0, "longest wait (s) between reopening attempts",
                               above=0.0, max=3600.0)

    def problems(self, at: At) -> Iterator[str]:
        if self.source == "replay" and not self.path:
            yield f'{at("path")}: required when camera.source = "replay" (an image folder or video)'
        if self.retry_max < self.retry_initial:
            yield f"{at('retry_max')}: expected >= {at('retry_initial')} ({self.retry_initial:g})"


@dataclass(frozen=True)
class PipelineConfig:
    prediction_interval: float = setting(1.0, "seconds between published predictions; 0 = all",
                                         min=0.0, max=86400.0)
    stats_interval: float = setting(30.0, "seconds between stats messages",
                                    above=0.0, max=86400.0)
    stall_timeout: float = setting(5.0, "seconds without a camera frame before the camera "
                                   "counts as failed (at least 3 frame periods)", above=0.0, max=3600.0)
    max_frame_age: float = setting(2.0, "adds and snapshots refuse a frame older than this many "
                                   "seconds (at least 2 frame periods)", above=0.0, max=3600.0)
    max_inference_failures: int = setting(10, "inference failures in a row before the CPU model "
                                          "takes over (accelerator = auto) or the service exits",
                                          min=1, max=100000)


@dataclass(frozen=True)
class MqttTlsConfig:
    enabled: bool = setting(False, "connect with TLS")
    ca: str = setting("", "CA certificate file; empty = the system's")
    certfile: str = setting("", "client certificate file, for certificate login")
    keyfile: str = setting("", "client key file (with certfile)")
    insecure: bool = setting(False, "skip the host name check (testing only)")

    def problems(self, at: At) -> Iterator[str]:
        if self.keyfile and not self.certfile:
            yield f"{at('keyfile')}: given without {at('certfile')}"


_QOS = {"min": 0, "max": 2}


@dataclass(frozen=True)
class MqttQosConfig:
    status: int = setting(1, "QoS of online/offline and camera state", **_QOS)
    prediction: int = setting(0, "QoS of predictions", **_QOS)
    classes: int = setting(1, "QoS of the class list", **_QOS)
    stats: int = setting(0, "QoS of stats", **_QOS)
    snapshot: int = setting(0, "QoS of JPEG snapshots", **_QOS)
    detections: int = setting(0, "QoS of detections", **_QOS)
    commands: int = setting(1, "QoS of the command subscription", **_QOS)


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = setting(True, "publish over MQTT")
    host: str = setting("localhost", "broker host (env EDGEKNN_MQTT_HOST overrides)",
                        check=checks.host)
    port: int = setting(1883, "broker port", min=1, max=65535)
    client_id: str = setting("", "empty = edgeknn-<device_id>")
    username: str = setting("", "empty = no login")
    password: str = setting("", "env EDGEKNN_MQTT_PASSWORD overrides", secret=True)
    keepalive: int = setting(60, "seconds", min=5, max=3600)
    base_topic: str = setting("", "empty = edgeknn/<device_id>", check=checks.topic)
    max_queued: int = setting(1000, "predictions and detections kept while the broker is slow or "
                              "away (replies and retained state are always kept)",
                              min=1, max=1_000_000)
    reconnect_min: float = setting(1.0, "first reconnect wait (s)", above=0.0, max=3600.0)
    reconnect_max: float = setting(60.0, "longest reconnect wait (s)", above=0.0, max=3600.0)
    session_expiry: int = setting(300, "seconds the broker keeps our session (and the commands "
                                  "sent meanwhile) while we are away; 0 = a clean session each time",
                                  min=0, max=604800)
    command_queue: int = setting(64, "commands waiting to run; more are answered busy",
                                 min=1, max=10000)
    max_image_pixels: int = setting(MAX_PIXELS, "largest image an add command may upload (pixels)",
                                    min=10_000, max=50_000_000)
    tls: MqttTlsConfig = section(MqttTlsConfig, "TLS to the broker")
    qos: MqttQosConfig = section(MqttQosConfig, "QoS per message kind")

    def problems(self, at: At) -> Iterator[str]:
        if self.reconnect_max < self.reconnect_min:
            minimum = f"{at('reconnect_min')} ({self.reconnect_min:g})"
            yield f"{at('reconnect_max')}: expected >= {minimum}"
        if self.password and not self.username:
            yield f"{at('password')}: given without {at('username')}"


@dataclass(frozen=True)
class ButtonConfig:
    pin: int | str = setting(doc="the button's pin", **PIN_RULE)
    label: str = setting(doc="the class it teaches", check=checks.label)
    led: int | str = setting("", "an LED lit while this class is predicted; empty = none",
                             **OPTIONAL_PIN_RULE)


@dataclass(frozen=True)
class ClearButtonConfig:
    pin: int | str = setting("", "hold to forget every example; empty = none",
                             **OPTIONAL_PIN_RULE)
    hold_time: float = setting(3.0, "seconds to hold", above=0.0, max=60.0)


@dataclass(frozen=True)
class GpioConfig:
    enabled: bool = setting(False, "use buttons and LEDs")
    pin_factory: str = setting("", 'gpiozero pin factory; "" = its default', choices=PIN_FACTORIES)
    hold_time: float = setting(1.0, "hold a button this long (s) to record", above=0.0, max=60.0)
    record_rate: float = setting(5.0, "examples per second while held", above=0.0, max=30.0)
    bounce_time: float = setting(0.05, "debounce (s)", min=0.0, max=1.0)
    status_led: int | str = setting("", "an LED showing state; empty = none", **OPTIONAL_PIN_RULE)
    clear_button: ClearButtonConfig = section(ClearButtonConfig, "the forget-everything button")
    buttons: tuple[ButtonConfig, ...] = setting((), "one [[gpio.buttons]] per class")

    def problems(self, at: At) -> Iterator[str]:
        used: dict[str, str] = {}
        keys = [("status_led", self.status_led), ("clear_button.pin", self.clear_button.pin)]
        for i, b in enumerate(self.buttons):
            keys += [(f"buttons[{i}].pin", b.pin), (f"buttons[{i}].led", b.led)]
        for key, value in keys:
            if value == "":
                continue
            name = checks.canonical_pin(value)
            if name in used:
                yield f"{at(key)}: {name} is already used by {at(used[name])}"
            else:
                used[name] = key
        labels: dict[str, int] = {}
        for i, b in enumerate(self.buttons):
            if b.label in labels:
                yield (f"{at(f'buttons[{i}].label')}: {b.label!r} is already the label of "
                       f"{at(f'buttons[{labels[b.label]}]')}")
            labels.setdefault(b.label, i)


@dataclass(frozen=True)
class DetectorConfig:
    enabled: bool = setting(False, "run the object detector")
    model: str = setting("pet_detector", "a manifest name or a .tflite path",
                         check=checks.non_empty)
    labels: str = setting("", "label file; empty = the manifest's")
    edgetpu_model: str = setting("", "its Edge TPU variant; empty = the manifest's")
    accelerator: str = setting("auto", "where to run", choices=ACCELERATORS)
    device: str = setting("", "Edge TPU device; empty = first", check=checks.tpu_device)
    threads: int = setting(0, "CPU threads; 0 = all cores", min=0, max=64)
    threshold: float = setting(0.5, "minimum score", min=0.0, max=1.0)
    max_detections: int = setting(10, "at most this many per frame", min=1, max=100)
    allow: tuple[str, ...] = setting((), "only these labels; empty = all", check=checks.label)
    resize: str = setting("squash", "how frames fit the model input", choices=RESIZE_POLICIES)
    every_n_frames: int = setting(1, "detect on every n-th processed frame", min=1, max=1000)
    max_rate: float = setting(0.0, "run the detector at most this often per second; 0 = no limit",
                              min=0.0, max=1000.0)
    classify_objects: bool = setting(False, "classify each detected box with the KNN store")
    teach_target: str = setting("frame", "what a teach button records", choices=TEACH_TARGETS)


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = setting(True, "announce the camera to Home Assistant (MQTT discovery)")
    prefix: str = setting("homeassistant", "Home Assistant's discovery prefix", check=checks.topic)
    name: str = setting("", "the device name in Home Assistant; empty = the device id")
    snapshot_interval: float = setting(10.0, "least seconds between snapshots sent when the label "
                                       "changes; 0 = none", min=0.0, max=86400.0)

    def problems(self, at: At) -> Iterator[str]:
        if not self.prefix:
            yield f"{at('prefix')}: expected a topic such as \"homeassistant\", got \"\""


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = setting(True, "serve the web page and HTTP API")
    host: str = setting("0.0.0.0", "address to listen on; 127.0.0.1 = this machine only (behind a proxy)",
                        check=checks.host)
    port: int = setting(8080, "port to listen on; 0 = any free port (the log says which)", min=0, max=65535)
    password_file: Path = setting(Path("/var/lib/edgeknn/web-password"),
                                  "the hashed password, written by: edgeknn web password")
    token: str = setting("", "a bearer token for API clients; empty = none", secret=True)
    anonymous_writes: bool = setting(False, "let anyone who reaches the page change the store")
    protect_reads: bool = setting(False, "the live view and reads need a login (or the token) too")
    secure_cookie: bool = setting(False, "send the session cookie over HTTPS only (behind a TLS proxy)")
    stream_fps: float = setting(5.0, "live view frames per second at most", above=0.0, max=30.0)
    stream_size: int = setting(640, "live view: longest side in pixels", min=64, max=4096)
    jpeg_quality: int = setting(75, "live view JPEG quality", min=10, max=95)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = setting("info", "log verbosity", choices=LOG_LEVELS)


@dataclass(frozen=True)
class Config:
    """The whole edgeknn config: ``Config.default()`` is what an empty file gives."""

    device_id: str = setting("", "MQTT topic level naming this device; empty = host name",
                             check=checks.device_id)
    store: StoreConfig = section(StoreConfig)
    models: ModelsConfig = section(ModelsConfig)
    embedder: EmbedderConfig = section(EmbedderConfig)
    classifier: ClassifierConfig = section(ClassifierConfig)
    camera: CameraConfig = section(CameraConfig)
    pipeline: PipelineConfig = section(PipelineConfig)
    mqtt: MqttConfig = section(MqttConfig)
    gpio: GpioConfig = section(GpioConfig)
    detector: DetectorConfig = section(DetectorConfig)
    homeassistant: HomeAssistantConfig = section(HomeAssistantConfig)
    web: WebConfig = section(WebConfig)
    logging: LoggingConfig = section(LoggingConfig)

    @classmethod
    def default(cls) -> Config:
        return cls()
