"""Buttons and LEDs: teach with physical buttons, see the prediction on LEDs.

Wiring.  Each button goes between a GPIO pin and ground; the Pi's internal
pull-up holds the pin high, so a press reads low (gpiozero ``pull_up=True``).
Each LED, with its resistor, goes from a GPIO pin to ground and lights when
the pin is high.  Pins are BCM numbers (``17``) or gpiozero names
(``"GPIO17"``, ``"BOARD11"``).

What a person does and sees:

* Press a class button: one example of that class is added at once, as in
  Teachable Machine, where the press is the shutter.
* Keep holding it past ``hold_time``: the panel records ``record_rate``
  examples a second until the button is let go, and the status LED blinks.
  The example taken on press is not repeated; recording starts at
  ``hold_time``.
* Only one class records at a time.  A second button held while another
  records adds its one press example but does not record: every frame would
  otherwise be taught as two classes at once, examples that contradict each
  other.  Recording stops when the button that started it is let go.
* Hold the clear button for its ``hold_time`` (3 s by default): ``on_clear``
  runs once per hold.  The status LED flickers while the button is held and
  stops flickering once the store is cleared, which tells the person to let go.
  Letting go early does nothing but log how to clear.
* A class's LED lights while that class is predicted.  The status LED is
  steady on while the panel runs, and blips briefly for a few seconds after an
  ``on_add`` or ``on_clear`` call fails (or after :meth:`ButtonPanel.show_error`).

Threads.  gpiozero calls the handlers here on its own threads (the pin's edge
thread and each Button's hold thread).  They only note what happened and wake
the panel's one worker thread, which makes every ``on_add``/``on_clear`` call
and drives the status LED.  So a ~10 ms embedding never delays gpiozero's edge
detection, the callbacks never run concurrently with each other, and
:meth:`ButtonPanel.close` has one thread to stop.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from edgeknn.errors import ConfigError, GpioError

if TYPE_CHECKING:
    from edgeknn.config import GpioConfig

log = logging.getLogger(__name__)

PinSpec = int | str
"""A BCM pin number, or a gpiozero pin name such as ``"GPIO17"`` or ``"BOARD11"``; "" is none."""


@dataclass(frozen=True)
class Blink:
    """A status LED pattern: on for ``on_time`` seconds, then off for ``off_time``."""

    on_time: float
    off_time: float


# Three patterns a person can tell apart at a glance, and from the steady
# light of an idle panel: an even blink, a flicker, and short blips on a
# mostly dark LED (the light "going out" reads as something wrong).
RECORDING_BLINK = Blink(0.2, 0.2)
CLEAR_WARNING_BLINK = Blink(0.05, 0.05)
ERROR_BLINK = Blink(0.05, 0.45)
ERROR_SHOW_SECONDS = 3.0


# gpiozero's own preference order, without "native": it pokes /dev/gpiomem
# registers, does not know the Pi 5, and gpiozero warns when it falls back to
# it.  Anyone who wants it can name it.
DEFAULT_PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio")
# What [gpio] pin_factory may name (the config schema imports it): "" is the
# first of DEFAULT_PIN_FACTORIES that works.  gpiozero itself is imported only
# where a pin is opened, so the config loads without it.
PIN_FACTORIES = ("", *DEFAULT_PIN_FACTORIES, "native", "mock")


def open_pin_factory(name: str = "") -> Any:
    """Open the gpiozero pin factory that ``[gpio] pin_factory`` names.

    ``""`` means the first of :data:`DEFAULT_PIN_FACTORIES` that works here
    (lgpio on current Raspberry Pi OS); ``"mock"`` gives gpiozero's
    ``MockFactory``, pins that exist only in memory.  The caller owns the
    factory and closes it (``factory.close()``) after the devices on it.
    ``name`` is one of :data:`PIN_FACTORIES` (the config checked it).  Raises
    GpioError naming why each candidate failed when none works here.
    """
    available = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    candidates = DEFAULT_PIN_FACTORIES if name == "" else (name,)
    failures = []
    for candidate in candidates:
        entry = available.get(candidate)
        if entry is None:
            failures.append(f"{candidate}: not installed")
            continue
        try:
            return entry.load()()
        # Each backend fails its own way: ImportError, OSError, lgpio.error,
        # RuntimeError from RPi.GPIO off a Pi; all mean "not this one".
        except Exception as exc:
            failures.append(f"{candidate}: {why_factory_failed(exc)}")
    chips = "" if any(p.startswith("gpiochip") for p in _dev_entries()) else "no GPIO chip (/dev/gpiochip*) here; "
    fix = ("install lgpio (pip install 'edgeknn[gpio]', or apt install python3-lgpio on Raspberry Pi OS)"
           if all(f.endswith(": not installed") for f in failures) else "or set gpio.enabled = false")
    raise GpioError(f"no GPIO library works here: {chips}{'; '.join(failures)}; {fix}")


def _dev_entries() -> list[str]:
    try:
        return os.listdir("/dev")
    except OSError:
        return []


def why_factory_failed(exc: BaseException) -> str:
    """A pin factory's failure in words, lgpio's notification pipe translated.

    lgpio, when imported, makes a FIFO named ``.lgd-nfy<handle>`` in ``$LG_WD``
    (else the working directory, where it then changes to) and opens it by
    that relative name (lgpio_extra.py, ``_callback_thread``); where it cannot
    create the FIFO the handle is an error code, and the import fails with
    ``FileNotFoundError: '.lgd-nfy-3'``.
    """
    if isinstance(exc, FileNotFoundError) and ".lgd-nfy" in str(exc):
        where = os.environ.get("LG_WD") or os.getcwd()
        return (f"lgpio cannot make its notification pipe in {where} (not writable by this user); "
                "set LG_WD to a writable directory (systemd/edgeknn.service sets LG_WD=/run/edgeknn)")
    return str(exc) or type(exc).__name__


class ButtonPanel:
    """Class buttons, a clear button and LEDs over gpiozero (see the module docstring).

    ``config`` is the validated ``[gpio]`` section, used as it is: its rules
    (pin names, one use per pin, one button per class, times) live in the
    config schema, and a pin given as "" is not wired.  Whether a pin exists
    on this board only the pin factory knows; that is reported, with the
    pin's key path, when the panel opens it.

    ``on_add(label)`` and ``on_clear()`` are called on the panel's worker
    thread; an exception from either is logged and shown on the status LED,
    and the panel carries on.  ``pin_factory`` is a gpiozero pin factory (a
    ``MockFactory`` in tests); None opens the default one with
    :func:`open_pin_factory` and the panel then closes it too.  ``clock``
    (seconds, monotonic) paces recording and the status LED's error and clear
    times; tests pass a fake one.  A panel is live from construction until
    :meth:`close`.
    """

    def __init__(
        self,
        config: GpioConfig,
        *,
        on_add: Callable[[str], object],
        on_clear: Callable[[], object],
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_add = on_add
        self._on_clear = on_clear
        self._owns_factory = pin_factory is None
        self._factory = open_pin_factory("") if pin_factory is None else pin_factory
        # Guards the state below, shared between gpiozero's threads, the worker
        # and callers of show_*; also held while the LEDs are written so that
        # close() cannot close them under a writer.
        self._lock = threading.Lock()
        self._recording: str | None = None
        self._clear_pressed_at: float | None = None
        self._cleared_this_hold = False
        self._error_until = 0.0
        self._predicted: str | None = None
        self._closing = False  # close() has begun; a second call returns at once
        self._closed = False  # the LEDs are closed; nothing may write them
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], object]]] = queue.SimpleQueue()
        self._buttons: list[Any] = []
        self._class_leds: dict[str, Any] = {}
        self._status_led: Any = None
        self._clear_hold_time = 0.0
        try:
            self._open_devices()
        except BaseException:
            self._close_devices()
            raise
        # A daemon thread, so that an on_add stuck in I/O cannot keep the
        # process alive after close() has given up waiting for it.
        self._worker = threading.Thread(target=self._run, name="edgeknn-gpio", daemon=True)
        self._worker.start()

    # -- what callers use --------------------------------------------------

    @property
    def is_recording(self) -> bool:
        """Whether a held button is recording examples now."""
        with self._lock:
            return self._recording is not None

    @property
    def recording_label(self) -> str | None:
        """The class being recorded, or None."""
        with self._lock:
            return self._recording

    def show_prediction(self, label: str | None) -> None:
        """Light the LED of the predicted class and no other; None or an unwired class: all off."""
        with self._lock:
            if self._closed or label == self._predicted:
                return
            self._predicted = label
            for name, led in self._class_leds.items():
                if name == label:
                    led.on()
                else:
                    led.off()

    def show_error(self) -> None:
        """Blip the status LED for a few seconds: something the person did or saw failed."""
        with self._lock:
            self._error_until = self._clock() + ERROR_SHOW_SECONDS
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (waiting up to ``timeout`` s) and release every pin; idempotent.

        A button held at that moment can add up to its hold time: gpiozero's
        hold thread notices close only when its wait for the hold ends.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
        # Buttons first, so that no press arrives while the worker stops.
        for button in self._buttons:
            button.close()
        self._stop.set()
        self._wake.set()
        # Called from on_add or on_clear, the worker ends once that returns.
        if self._worker is not threading.current_thread():
            self._worker.join(timeout)
            stuck = self._worker.is_alive()
        else:
            stuck = False
        if stuck:
            log.error(
                "gpio: the button worker did not stop within %.1f s (an on_add or on_clear call "
                "is still running); releasing the pins anyway",
                timeout,
            )
        with self._lock:
            self._closed = True
            self._close_devices()

    def __enter__(self) -> ButtonPanel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- building and releasing pins ----------------------------------------

    def _open(self, key: str, device: type, pin: PinSpec, **kwargs: Any) -> Any:
        from gpiozero import GPIOZeroError

        try:
            return device(pin, pin_factory=self._factory, **kwargs)
        except (GPIOZeroError, OSError) as exc:
            raise ConfigError(f"{key}: cannot use pin {pin!r}: {exc}") from exc

    def _open_button(self, key: str, pin: PinSpec, hold_time: float) -> Any:
        from gpiozero import Button

        button = self._open(
            key,
            Button,
            pin,
            pull_up=True,
            # gpiozero takes None, not 0, for "no debounce".
            bounce_time=self._config.bounce_time or None,
            hold_time=hold_time,
        )
        self._buttons.append(button)
        return button

    def _open_devices(self) -> None:
        from gpiozero import LED

        c = self._config
        if c.status_led != "":
            self._status_led = self._open("gpio.status_led", LED, c.status_led)
        for i, spec in enumerate(c.buttons):
            button = self._open_button(f"gpio.buttons[{i}].pin", spec.pin, c.hold_time)
            button.when_pressed = functools.partial(self._class_pressed, spec.label)
            button.when_held = functools.partial(self._class_held, spec.label, button)
            button.when_released = functools.partial(self._class_released, spec.label)
            if spec.led != "":
                self._class_leds[spec.label] = self._open(f"gpio.buttons[{i}].led", LED, spec.led)
        clear = c.clear_button
        if clear.pin != "":
            self._clear_hold_time = clear.hold_time
            button = self._open_button("gpio.clear_button.pin", clear.pin, clear.hold_time)
            button.when_pressed = self._clear_pressed
            button.when_held = self._clear_held
            button.when_released = self._clear_released

    def _close_devices(self) -> None:
        for device in [*self._buttons, *self._class_leds.values(), self._status_led]:
            if device is not None:
                device.close()
        if self._owns_factory:
            self._factory.close()

    # -- gpiozero's threads: note what happened, wake the worker -------------

    def _class_pressed(self, label: str) -> None:
        self._jobs.put((f"adding an example of {label!r}", functools.partial(self._on_add, label)))
        self._wake.set()

    def _class_held(self, label: str, button: Any) -> None:
        with self._lock:
            # The hold thread may fire just as the button is let go, after
            # when_released has run; starting then would record forever.
            if not button.is_pressed:
                return
            other = self._recording
            if other is None:
                self._recording = label
        if other is None:
            log.info("gpio: recording %r until the button is let go", label)
        else:
            log.warning("gpio: %r is held but %r is recording; one class at a time", label, other)
        self._wake.set()

    def _class_released(self, label: str) -> None:
        with self._lock:
            if self._recording == label:
                self._recording = None
        self._wake.set()

    def _clear_pressed(self) -> None:
        with self._lock:
            self._clear_pressed_at = self._clock()
            self._cleared_this_hold = False
        self._wake.set()

    def _clear_held(self) -> None:
        with self._lock:
            self._cleared_this_hold = True
        self._jobs.put(("clearing every example", self._on_clear))
        self._wake.set()

    def _clear_released(self) -> None:
        with self._lock:
            pressed_at, self._clear_pressed_at = self._clear_pressed_at, None
            cleared = self._cleared_this_hold
        if not cleared and pressed_at is not None:
            log.info(
                "gpio: clear button let go after %.1f s; hold it %.0f s to clear every example",
                self._clock() - pressed_at,
                self._clear_hold_time,
            )
        self._wake.set()

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        period = 1.0 / self._config.record_rate
        recording: str | None = None
        next_example = 0.0
        shown: object = None  # nothing shown yet: the first pass lights the LED
        while True:
            # Cleared before looking at the state, so that a wake-up that
            # arrives while we work makes the wait below return at once.
            self._wake.clear()
            self._run_jobs()
            with self._lock:
                label = self._recording
            now = self._clock()
            if label != recording:
                recording, next_example = label, now
            if recording is not None and now >= next_example and not self._stop.is_set():
                self._call(f"recording an example of {recording!r}", self._on_add, recording)
                # Paced from the schedule, not from the call's end, so the
                # rate holds; but never catch up in a burst after a slow call.
                next_example = max(next_example + period, self._clock())
            if self._stop.is_set():
                return
            shown = self._show_status(shown)
            self._wake.wait(self._seconds_until_due(recording, next_example))

    def _run_jobs(self) -> None:
        while not self._stop.is_set():
            try:
                what, job = self._jobs.get_nowait()
            except queue.Empty:
                return
            self._call(what, job)

    def _call(self, what: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            # A failed add must not end the buttons: the person sees the
            # error blink and can press again; the log has the traceback.
            log.exception("gpio: %s failed", what)
            self.show_error()

    def _status_pattern(self) -> Blink | None:
        """The status LED's pattern now; None is steady on."""
        with self._lock:
            if self._clear_pressed_at is not None and not self._cleared_this_hold:
                return CLEAR_WARNING_BLINK
            if self._clock() < self._error_until:
                return ERROR_BLINK
            if self._recording is not None:
                return RECORDING_BLINK
            return None

    def _show_status(self, shown: object) -> object:
        """Switch the status LED to the pattern due now; return what it shows."""
        pattern: object = self._status_pattern() or "steady"
        if pattern == shown or self._status_led is None:
            return pattern
        with self._lock:
            if self._closed:
                return shown
            if isinstance(pattern, Blink):
                # Restarting a blink restarts its cycle, hence only on change.
                self._status_led.blink(pattern.on_time, pattern.off_time, background=True)
            else:
                self._status_led.on()
        return pattern

    def _seconds_until_due(self, recording: str | None, next_example: float) -> float | None:
        now = self._clock()
        deadlines = []
        if recording is not None:
            deadlines.append(next_example - now)
        with self._lock:
            if self._error_until > now:
                deadlines.append(self._error_until - now)
        return max(0.0, min(deadlines)) if deadlines else None
