"""`edgeknn run`: build the application from its config, run it, stop it cleanly.

Start order: store -> embedder -> detector -> MQTT -> camera + capture thread
-> buttons -> processing loop -> web page.  The main thread only waits: it sends the
stats, feeds the systemd watchdog while the processing loop is alive, and
handles signals (SIGTERM/SIGINT stop, SIGHUP reloads what can change while
running).  Stop (see :meth:`Daemon.stop`) takes under 5 s: the web page, buttons,
then MQTT (the command in flight finishes, ``offline`` is published), then camera
and threads, the store last.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeknn.cameras import Backoff, Camera, RetryingCamera, make_camera
from edgeknn.config import Config, EmbedderConfig, ModelsConfig, MqttConfig, load_config
from edgeknn.errors import ConfigError, EdgeKnnError
from edgeknn.mqtt import NullPublisher, Publisher
from edgeknn.mqtt.payloads import Announcer, DeviceState, Stats
from edgeknn.mqtt.topics import Topics
from edgeknn.results import Frame, Prediction
from edgeknn.service import homeassistant
from edgeknn.service.detection_stage import DetectionStage
from edgeknn.service.engine import Embeds, Engine
from edgeknn.service.fresh import FreshFrames
from edgeknn.service.health import Change, Health, HealthPolicy
from edgeknn.service.pipeline import CaptureThread, FrameSlot, Processed, Processor
from edgeknn.service.refit import Refitter
from edgeknn.service.systemd import Notifier
from edgeknn.service.teacher import Teacher
from edgeknn.service.viewmaker import ViewMaker
from edgeknn.store import Store
from edgeknn.vision.engines import detector_from_config, embedder_from_config
from edgeknn.web import page_url

if TYPE_CHECKING:  # imported when used, so that paho, gpiozero and starlette load only if enabled
    from edgeknn.gpio import ButtonPanel
    from edgeknn.mqtt.client import MqttClient
    from edgeknn.web.live import Status
    from edgeknn.web.site import WebSite

log = logging.getLogger(__name__)

STOP_BUDGET = 4.5  # seconds for the whole stop; systemd's TimeoutStopSec is 10


def device_id(config: Config) -> str:
    return config.device_id or socket.gethostname().split(".")[0]


def mqtt_config(config: Config, device: str) -> MqttConfig:
    """The ``[mqtt]`` section with its client id filled in: ``edgeknn-<device>`` unless set."""
    return replace(config.mqtt, client_id=config.mqtt.client_id or f"edgeknn-{device}")


def health_policy(config: Config) -> HealthPolicy:
    """The health rules from the config; stall and age never shorter than a few frame periods."""
    p, period = config.pipeline, 1.0 / config.camera.fps
    return HealthPolicy(stall_after=max(p.stall_timeout, 3 * period),
                        max_inference_failures=p.max_inference_failures,
                        fps_window=p.stats_interval,
                        retry_grace=max(10.0, 3 * period))


def max_frame_age(config: Config) -> float:
    return max(config.pipeline.max_frame_age, 2.0 / config.camera.fps)


STATUS_INTERVAL = 5.0  # seconds between STATUS= updates while nothing changes


class Daemon:
    """The running application.  ``pin_factory`` and ``camera`` are injectable for tests."""

    def __init__(self, config: Config, *, pin_factory: Any = None, camera: Camera | None = None,
                 config_path: Path | None = None, notifier: Notifier | None = None,
                 open_embedder: Callable[[EmbedderConfig, ModelsConfig], Embeds] = embedder_from_config) -> None:
        self.config = config
        self.config_path = config_path
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.notifier = notifier or Notifier()
        self.health = Health(health_policy(config))
        self.fresh_frames: FreshFrames | None = None
        self._open_embedder = open_embedder
        self.slot = FrameSlot()
        self.device = device_id(config)
        self.topics = Topics.for_device(self.device, config.mqtt.base_topic or None)
        self._pin_factory = pin_factory
        self._own_factory: Any = None  # a gpiozero pin factory we opened, and must close
        self._camera_override = camera
        self.started = time.monotonic()
        self.failure: str | None = None  # why the daemon stopped by itself, if it did
        self.log_level_given: str | None = None  # --log-level, which a reload must not override
        self.store: Store | None = None
        self.announcer: Announcer | None = None
        self.camera: RetryingCamera | None = None
        self.capture: CaptureThread | None = None
        self.mqtt: MqttClient | None = None
        self.panel: ButtonPanel | None = None
        self.processor: Processor | None = None
        self.teacher: Teacher | None = None
        self.engine: Engine | None = None
        self.refitter: Refitter | None = None
        self.view_maker: ViewMaker | None = None
        self.detection: DetectionStage | None = None
        self.homeassistant: homeassistant.HomeAssistantLink | None = None
        self._processing: threading.Thread | None = None
        self.web: WebSite | None = None  # while the web server runs

    # ----- start -------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        store = self.store = Store.open(cfg.store.path)
        embedder = self._open_embedder(cfg.embedder, cfg.models)
        store.bind(embedder.info.fingerprint, embedder.info.dim)
        log.info("embedder %s on %s (%d-d); store %s with %d examples",
                 embedder.info.tensor, embedder.info.backend, embedder.info.dim, store.path, len(store))
        d = cfg.detector
        detector = None
        if d.enabled:
            detector = detector_from_config(d, cfg.models)
            log.info("detector %s on %s", detector.opened.path.name, detector.opened.backend)
        # Always running, so a reload may switch to logreg; the class means answer until a fit lands.
        self.refitter = Refitter(store, embedder.info.features)
        self.refitter.start()
        self.engine = Engine(embedder, store, cfg.classifier, detector, self.refitter)
        self.view_maker = ViewMaker(self.engine)  # idle unless classifier.views means "crops"
        self.view_maker.start()

        publisher = self._start_mqtt(mqtt_config(cfg, self.device))
        self.announcer = Announcer(publisher, self.topics, cfg.mqtt.qos)
        if d.enabled:
            self.detection = DetectionStage(self.engine, self.announcer, d)

        self.fresh_frames = FreshFrames(self.slot, max_frame_age(cfg))
        teacher = self.teacher = Teacher(
            self.engine, self.fresh_frames, on_change=self._classes_changed,
            on_snapshot=self.announcer.snapshot, default_target=d.teach_target,
            view_maker=self.view_maker,
        )
        self.homeassistant = homeassistant.connect(
            cfg, self.device, self.mqtt, self.topics, classes=store.class_ids,
            resend_states=self._announce_states, snapshot=self.teacher.snapshot,
            configuration_url=page_url(cfg.web, socket.gethostname()))
        if self.mqtt is not None:
            from edgeknn.mqtt.commands import handle_message

            pixels = cfg.mqtt.max_image_pixels
            self.mqtt.on_command(lambda verb, payload: handle_message(
                verb, payload, teacher, max_image_pixels=pixels))
            self.mqtt.start()

        self._start_camera()
        self._start_gpio()

        hooks: list[Callable[[Processed], None]] = [self._after_frame]
        if self.detection:
            hooks.append(self.detection.on_frame)
        if cfg.web.enabled:
            self.web = self._web_site(store)
            hooks.append(self.web.live.on_frame)
        self.processor = Processor(
            self.engine, classifier=cfg.classifier, pipeline=cfg.pipeline,
            announce=self._announce_prediction, after_frame=hooks,
        )
        self.health.begin()
        self._processing = threading.Thread(target=self._process, name="processing", daemon=True)
        self._processing.start()
        self._start_web()
        self._announce_all()
        self.notifier.ready(self.health.status_line(self.backend, len(store)))

    @property
    def backend(self) -> str:
        """Where the embedder runs: "edgetpu" or "cpu"."""
        return self.engine.embedder.info.backend if self.engine else "cpu"

    def _start_mqtt(self, settings: MqttConfig) -> Publisher:
        if not settings.enabled:
            log.info("mqtt disabled: nothing is published")
            return NullPublisher()
        from edgeknn.mqtt.client import MqttClient

        self.mqtt = MqttClient(settings, self.topics, on_connected=self._announce_all)
        return self.mqtt

    def _start_camera(self) -> None:
        """The camera behind a retrying wrapper: a failing camera is reopened with backoff
        and reported on the state topic, never fatal.  Opening happens on the capture thread."""
        assert self.engine is not None
        c = self.config.camera
        if c.lores and self.config.detector.enabled:
            # The detector and snapshots need the full frame, not the model-sized
            # stream: the ISP then scales nothing and the embedder resizes.
            log.info("camera.lores is off while the detector runs")
            c = replace(c, lores=False)
        source = self._camera_override or make_camera(
            c, self.engine.embedder.info.input_size, sleep=self.stop_event.wait
        )
        self.camera = RetryingCamera(source, stop=self.stop_event, on_state=self._camera_state,
                                     backoff=Backoff(c.retry_initial, c.retry_max),
                                     on_retry=self.health.camera_retrying)
        self.capture = CaptureThread(self.camera, self.slot, self.stop_event)
        self.capture.start()

    def _web_site(self, store: Store) -> WebSite:
        from edgeknn.web.site import WebSite

        assert self.teacher is not None
        detection = self.detection
        return WebSite(self.config.web, target=self.teacher, store=store, frames=self.slot,
                       status=self.web_status, detections=(lambda: detection.latest) if detection else None,
                       is_processing=self.health.is_processing,
                       hold_time=self.config.gpio.hold_time, record_rate=self.config.gpio.record_rate)

    def _start_web(self) -> None:
        """The page is an extra: a port in use is logged and the service runs without it."""
        if self.web is None:
            return
        try:
            self.web.start()
        except EdgeKnnError as exc:
            log.error("%s", exc)
            self.web = None

    def web_status(self) -> Status:
        from edgeknn import __version__
        from edgeknn.web.live import Status

        mqtt = "disabled" if self.mqtt is None else "connected" if self.mqtt.is_connected else "disconnected"
        return Status(__version__, self.device, self.backend, str(self.health.parts()["camera"]), mqtt,
                      self.detection is not None, self.stats(), self.processor.processed if self.processor else 0)

    def _start_gpio(self) -> None:
        """Buttons and LEDs; where they cannot work (no GPIO chip, no access) the service
        runs on without them and says why on the state topic, rather than restart forever."""
        if not self.config.gpio.enabled:
            return
        try:
            self._open_panel()
        except ConfigError:
            raise  # a mistake in the config: fix it, a restart will not
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            self.health.gpio_failed(reason)
            log.error("gpio: failed: %s; running without buttons and LEDs (MQTT commands still work)", reason)

    def _open_panel(self) -> None:
        g = self.config.gpio
        from edgeknn.gpio import ButtonPanel, open_pin_factory

        factory = self._pin_factory
        if factory is None:
            factory = self._own_factory = open_pin_factory(g.pin_factory)
        assert self.teacher is not None
        self.panel = ButtonPanel(g, on_add=self.teacher.add_from_button,
                                 on_clear=self.teacher.clear_from_button, pin_factory=factory)

    # ----- running -------------------------------------------------------------

    def _process(self) -> None:
        assert self.processor is not None
        try:
            self.processor.run(self.slot, self.stop_event, self.health)
        except Exception as exc:  # a bug: log it and stop with a failure, so systemd restarts us
            log.exception("processing loop crashed")
            self.failure = f"processing loop crashed: {exc}"
            self.stop_event.set()

    def _after_frame(self, done: Processed) -> None:
        if self.panel is not None:
            p = done.prediction
            self.panel.show_prediction(None if p.unknown else p.label)

    def _announce_prediction(self, prediction: Prediction, frame: Frame, latency_ms: float) -> None:
        assert self.announcer is not None
        self.announcer.prediction(prediction, frame, latency_ms)
        if self.announcer.recognised(prediction) and self.homeassistant is not None:
            self.homeassistant.label_changed()

    def _classes_changed(self, counts: dict[str, int]) -> None:
        if self.homeassistant is not None:  # new entities and options before the class list
            self.homeassistant.publish_config()
        if self.announcer is not None:
            self.announcer.classes(counts)
        if self.processor is not None:
            self.processor.reset()
        self._refresh_status()

    def _camera_state(self, ok: bool, message: str) -> None:
        """From the camera's thread: a failure counts at once; whether the state topic
        says so is health's decision, taken on the main thread (:meth:`_check_health`)."""
        if not ok:
            self.health.camera_failed(message)

    def _check_health(self) -> None:
        """Once a tick on the main thread: the camera's last frame, state changes, the model."""
        latest = self.slot.latest
        if latest is not None:
            self.health.frame_arrived(latest.captured)
        changes = self.health.update()
        for change in changes:
            self._log_change(change)
        if changes:
            self._announce_state()
            self._refresh_status()
        why = self.health.inference_exhausted()
        if why is not None:
            self._give_up_on_the_model(why)

    def _log_change(self, change: Change) -> None:
        if change.state.failed:
            log.error("%s: %s", change.part, change.state)
            if self.panel is not None:
                self.panel.show_error()
        else:
            log.info("%s: ok again", change.part)

    def _give_up_on_the_model(self, why: str) -> None:
        """Too many inference failures in a row: the CPU model, or exit for systemd to restart us."""
        if self.backend == "edgetpu" and self.config.embedder.accelerator == "auto" and self.engine is not None:
            log.error("inference: %s; falling back to the CPU model", why)
            try:
                cpu = self._open_embedder(replace(self.config.embedder, accelerator="cpu"), self.config.models)
            except EdgeKnnError as exc:
                self._fail(f"inference: {why}; the CPU model did not open either: {exc}")
                return
            self.engine.embedder = cpu
            self.health.inference_restarted()
            self._announce_state()
            self._refresh_status()
            return
        self._fail(f"inference: {why}")

    def _fail(self, why: str) -> None:
        log.error("%s; exiting so that systemd restarts the service", why)
        self.failure = why
        self.stop_event.set()

    def _refresh_status(self) -> None:
        examples = len(self.engine.store) if self.engine is not None else 0
        self.notifier.status(self.health.status_line(self.backend, examples))

    def _announce_state(self) -> None:
        if self.announcer is None:
            return
        reconnects = self.mqtt.reconnects if self.mqtt is not None else 0
        parts = self.health.parts()
        gpio = str(parts["gpio"]) if self.config.gpio.enabled else "off"
        self.announcer.state(DeviceState(
            camera=str(parts["camera"]), backend=self.backend, broker_reconnects=reconnects,
            inference=str(parts["inference"]), gpio=gpio, status=self.health.summary()))

    def _announce_all(self) -> None:
        """What a subscriber needs after we (re)connect: Home Assistant's config, then the rest."""
        if self.homeassistant is not None:
            self.homeassistant.publish_config()
        self._announce_states()

    def _announce_states(self) -> None:
        """Classes, state and stats (all retained)."""
        if self.engine is None or self.announcer is None:
            return
        self.announcer.classes(self.engine.store.counts())
        self._announce_state()
        self.announcer.stats(self.stats())

    def stats(self) -> Stats:
        assert self.engine is not None
        timings = self.processor.timings if self.processor else None
        return Stats(
            fps=self.health.fps(),
            dropped_frames=self.slot.dropped,
            inference_ms_p50=timings.percentile(50) if timings else 0.0,
            inference_ms_p95=timings.percentile(95) if timings else 0.0,
            backend=self.backend,
            store_size=len(self.engine.store),
            uptime_s=time.monotonic() - self.started,
            classifier=self.engine.describe(),
        )

    def wait(self) -> None:
        """Until stopped: health checked, stats and STATUS= on schedule, the watchdog fed
        only while health says frames are processed (or a failed camera is being retried)."""
        watchdog = self.notifier.watchdog_interval()
        next_stats = time.monotonic() + self.config.pipeline.stats_interval
        next_status = time.monotonic() + STATUS_INTERVAL
        tick = min(1.0, watchdog or 1.0)
        while not self.stop_event.wait(tick):
            now = time.monotonic()
            self._check_health()
            if self.stop_event.is_set():
                break
            if watchdog and self.health.should_feed_watchdog():
                self.notifier.watchdog()
            if now >= next_status:
                self._refresh_status()
                next_status = now + STATUS_INTERVAL
            if now >= next_stats and self.announcer is not None:
                self.announcer.stats(self.stats())
                next_stats = now + self.config.pipeline.stats_interval
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            if self._processing is not None and not self._processing.is_alive():
                crashed = self.capture.crashed if self.capture else None
                if crashed is not None and self.failure is None:
                    self.failure = f"camera capture crashed: {crashed}"
                log.info("processing ended (%s); stopping", self.failure or "the camera has no more frames")
                break

    # What SIGHUP can change while running; everything else needs a restart.
    RELOADABLE = ("classifier", "pipeline", "logging")

    def reload(self) -> None:
        """SIGHUP: take what can change while running from the config file; log the rest."""
        if self.config_path is None:
            return
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except EdgeKnnError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            self.notifier.ready()
            return
        assert self.engine is not None and self.processor is not None
        self.engine.classifier = new.classifier
        self.processor.configure(new.classifier, new.pipeline)
        self.health.policy = health_policy(new)
        if self.fresh_frames is not None:
            self.fresh_frames.max_age = max_frame_age(new)
        if self.log_level_given is None:
            logging.getLogger().setLevel(new.logging.level.upper())
        changed = [f.name for f in fields(new)
                   if f.name not in self.RELOADABLE and getattr(new, f.name) != getattr(self.config, f.name)]
        if changed:
            log.warning("reload: changes to %s take effect after a restart", ", ".join(changed))
            # keep running with what is actually in force
            new = replace(new, **{name: getattr(self.config, name) for name in changed})
        self.config = new
        log.info("reloaded %s", self.config_path)
        self.notifier.ready()

    # ----- stop ----------------------------------------------------------------

    def stop(self) -> None:
        """Stop in an order that loses nothing, within :data:`STOP_BUDGET` seconds:

        0. the web page: a write in flight finishes, no new requests;
        1. buttons: a button's add in flight finishes, no new presses;
        2. MQTT: the command in flight finishes, queued ones are answered,
           ``offline`` is published (the broker sends the Will only on a crash);
        3. camera, then the capture and processing threads;
        4. the store last (every acknowledged add is already on disk).
        """
        deadline = time.monotonic() + STOP_BUDGET
        self.stop_event.set()
        self.notifier.stopping()

        def left(share: float) -> float:
            return max(0.1, min(share, deadline - time.monotonic()))

        steps: list[tuple[str, Callable[[], object]]] = []
        panel, mqtt, web = self.panel, self.mqtt, self.web
        if web is not None:  # first: no new writes from the page
            steps.append(("web", lambda: web.stop(timeout=left(1.0))))
        if panel is not None:
            steps.append(("buttons", lambda: panel.close(timeout=left(1.5))))
        if self._own_factory is not None:
            steps.append(("pin factory", self._own_factory.close))
        if self.homeassistant is not None:
            steps.append(("home assistant", self.homeassistant.close))
        if mqtt is not None:
            steps.append(("mqtt", lambda: mqtt.stop(timeout=left(1.5))))
        if self.camera is not None:
            steps.append(("camera", self.camera.close))
        capture = self.capture
        if capture is not None:
            steps.append(("capture", lambda: self._join_capture(capture, left(0.5))))
        if self._processing is not None:
            steps.append(("processing", lambda: self._join_processing(left(0.5))))
        view_maker = self.view_maker
        if view_maker is not None:
            steps.append(("views", lambda: view_maker.stop(timeout=left(0.5))))
        refitter = self.refitter
        if refitter is not None:
            steps.append(("refit", lambda: refitter.stop(timeout=left(0.5))))
        if self.store is not None:
            steps.append(("store", self.store.close))
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping %s failed", name)
        self.panel = self._own_factory = self.mqtt = self.camera = self.capture = self.web = None
        self._processing = self.store = self.refitter = self.view_maker = None

    @staticmethod
    def _join_capture(capture: CaptureThread, timeout: float) -> None:
        if not capture.join(timeout):
            log.error("the capture thread did not stop within %.1f s", timeout)

    def _join_processing(self, timeout: float) -> None:
        assert self._processing is not None
        self._processing.join(timeout)
        if self._processing.is_alive():
            log.error("the processing loop did not stop within %.1f s", timeout)


def install_signal_handlers(daemon: Daemon) -> None:
    """Handlers only set events; the main thread acts on them."""

    def stop(signum: int, frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda s, f: daemon.reload_event.set())


def run(config_path: Path, *, log_level: str | None = None) -> int:
    """The service: ``log_level`` (from --log-level) overrides the config's."""
    config = load_config(config_path)
    logging.getLogger().setLevel((log_level or config.logging.level).upper())
    daemon = Daemon(config, config_path=config_path)
    daemon.log_level_given = log_level
    install_signal_handlers(daemon)
    try:
        daemon.start()
        daemon.wait()
    finally:
        daemon.stop()
    if daemon.failure:
        log.error("stopped: %s", daemon.failure)
        return 1
    log.info("stopped")
    return 0
