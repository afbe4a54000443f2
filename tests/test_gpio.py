"""The button panel, driven through gpiozero's own MockFactory pins.

Buttons are pulled up, so ``drive_low()`` is a press and ``drive_high()`` a
release.  Timing is checked by polling with generous deadlines, and rates and
blink patterns within wide bounds, so that a busy machine slows a test down
rather than failing it.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time

import pytest
from gpiozero import LED, Button, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from edgeknn.config import ButtonConfig, ClearButtonConfig, GpioConfig
from edgeknn.errors import ConfigError
from edgeknn.gpio import (
    CLEAR_WARNING_BLINK,
    ERROR_BLINK,
    RECORDING_BLINK,
    Blink,
    ButtonPanel,
    open_pin_factory,
)

CAT, DOG, CAT_LED, DOG_LED, STATUS_LED, CLEAR = 17, 27, 5, 6, 13, 26
WORKER = "edgeknn-gpio"


def wait_until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.01)


def settings(**changes) -> GpioConfig:
    """A ``[gpio]`` section built directly, as the schema would after validating it."""
    values = dict(
        enabled=True,
        buttons=(ButtonConfig(CAT, "cat", led=CAT_LED), ButtonConfig(DOG, "dog", led=DOG_LED)),
        clear_button=ClearButtonConfig(CLEAR, hold_time=0.3),
        status_led=STATUS_LED,
        hold_time=0.3,
        record_rate=20.0,
    )
    values.update(changes)
    return GpioConfig(**values)


class Teacher:
    """Stands in for the store: counts what the panel asks of it."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.clears = 0

    def add(self, label: str) -> None:
        self.added.append(label)

    def clear(self) -> None:
        self.clears += 1


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def teacher():
    return Teacher()


@pytest.fixture
def open_panel(factory, teacher):
    panels = []

    def open_(panel_settings=None, *, on_add=None, on_clear=None, clock=time.monotonic) -> ButtonPanel:
        panel = ButtonPanel(
            panel_settings or settings(),
            on_add=on_add or teacher.add,
            on_clear=on_clear or teacher.clear,
            pin_factory=factory,
            clock=clock,
        )
        panels.append(panel)
        return panel

    yield open_
    for panel in panels:
        panel.close()


def blink_times(pin, since: int, cycles: int = 3, timeout: float = 5.0) -> Blink:
    """Wait for ``cycles`` whole on/off cycles after state index ``since``; their median times.

    A MockPin records each change with how long the pin sat in the state it
    left.  Take ``since`` while the LED is steady: the first change after it
    then ends a phase that began before the blink did, and is skipped.
    """
    wait_until(lambda: len(pin.states) >= since + 1 + 2 * cycles, f"{cycles} blink cycles", timeout)
    changes = pin.states[since + 1 :]
    on = [change.timestamp for change in changes if not change.state]
    off = [change.timestamp for change in changes if change.state]
    return Blink(statistics.median(on), statistics.median(off))


def assert_blinks_like(measured: Blink, pattern: Blink) -> None:
    assert measured.on_time == pytest.approx(pattern.on_time, abs=0.1)
    assert measured.off_time == pytest.approx(pattern.off_time, abs=0.1)


# -- class buttons -------------------------------------------------------------


def test_short_press_adds_exactly_one_example(factory, teacher, open_panel):
    panel = open_panel()
    factory.pin(CAT).drive_low()
    factory.pin(CAT).drive_high()
    wait_until(lambda: teacher.added, "the press to add an example")
    time.sleep(0.6)  # twice the hold time: a recording would have started by now
    assert teacher.added == ["cat"]
    assert not panel.is_recording


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_holding_records_record_rate_examples_a_second(factory, teacher, open_panel):
    clock = FakeClock()
    panel = open_panel(settings(hold_time=0.2, record_rate=16.0), clock=clock)
    factory.pin(DOG).drive_low()
    wait_until(lambda: panel.is_recording, "the hold to start recording")
    wait_until(lambda: len(teacher.added) == 2, "the press example and the first recorded one")
    for tick in range(1, 17):  # one second, a sixteenth at a time: one example each
        clock.now += 1 / 16
        wait_until(lambda tick=tick: len(teacher.added) == 2 + tick, f"example {tick} of the second")
    factory.pin(DOG).drive_high()
    wait_until(lambda: not panel.is_recording, "the release to stop recording")
    assert teacher.added == ["dog"] * 18


def test_recording_after_a_stall_does_not_catch_up_in_a_burst(factory, teacher, open_panel):
    clock = FakeClock()
    panel = open_panel(settings(hold_time=0.2, record_rate=16.0), clock=clock)
    factory.pin(CAT).drive_low()
    wait_until(lambda: len(teacher.added) == 2, "the press example and the first recorded one")
    clock.now += 1.0  # a second in which the worker got nothing done (a slow on_add, say)
    wait_until(lambda: len(teacher.added) >= 3, "the overdue example")
    time.sleep(0.3)  # a burst would add all 16 overdue examples here
    factory.pin(CAT).drive_high()
    wait_until(lambda: not panel.is_recording, "the release to stop recording")
    # the overdue one, then the schedule starts again from now: one more at once, not 15
    assert teacher.added == ["cat"] * 4


def test_recording_stops_on_release(factory, teacher, open_panel):
    panel = open_panel(settings(hold_time=0.2))
    factory.pin(CAT).drive_low()
    wait_until(lambda: len(teacher.added) >= 4, "a few recorded examples")
    factory.pin(CAT).drive_high()
    assert not panel.is_recording
    time.sleep(0.1)
    count = len(teacher.added)
    time.sleep(0.5)  # ten recording periods
    assert len(teacher.added) == count


def test_recording_label_names_the_held_class(factory, open_panel):
    panel = open_panel()
    assert panel.recording_label is None
    factory.pin(DOG).drive_low()
    wait_until(lambda: panel.is_recording, "the hold to start recording")
    assert panel.recording_label == "dog"


def test_second_held_button_does_not_record_while_another_records(factory, teacher, open_panel):
    panel = open_panel()
    factory.pin(CAT).drive_low()
    wait_until(lambda: panel.is_recording, "cat to start recording")
    factory.pin(DOG).drive_low()
    time.sleep(0.6)  # twice the hold time
    assert panel.recording_label == "cat"
    assert teacher.added.count("dog") == 1  # the press example only
    factory.pin(CAT).drive_high()
    assert not panel.is_recording  # dog, still held, does not take over


def test_slow_on_add_does_not_block_button_events(factory, teacher, open_panel):
    released = threading.Event()

    def slow_add(label: str) -> None:
        released.wait(10)
        teacher.add(label)

    open_panel(settings(hold_time=5.0), on_add=slow_add)
    started = time.monotonic()
    for _ in range(3):
        factory.pin(CAT).drive_low()
        factory.pin(CAT).drive_high()
    assert time.monotonic() - started < 1.0
    released.set()
    wait_until(lambda: len(teacher.added) == 3, "all three presses to be added")


# -- clear button --------------------------------------------------------------


def test_short_press_on_clear_does_nothing(factory, teacher, open_panel, caplog):
    open_panel()
    with caplog.at_level(logging.INFO, logger="edgeknn.gpio"):
        factory.pin(CLEAR).drive_low()
        factory.pin(CLEAR).drive_high()
        time.sleep(0.6)  # twice the clear hold time
    assert teacher.clears == 0
    assert "hold it" in caplog.text


def test_holding_clear_clears_once(factory, teacher, open_panel):
    open_panel()
    factory.pin(CLEAR).drive_low()
    wait_until(lambda: teacher.clears, "the hold to clear")
    time.sleep(0.8)  # well past a second hold time
    factory.pin(CLEAR).drive_high()
    assert teacher.clears == 1


def test_status_led_flickers_while_clear_is_held(factory, teacher, open_panel):
    open_panel(settings(clear_button=ClearButtonConfig(CLEAR, hold_time=10.0)))
    led = factory.pin(STATUS_LED)
    wait_until(lambda: led.state, "the status LED to light")
    since = len(led.states)
    factory.pin(CLEAR).drive_low()
    assert_blinks_like(blink_times(led, since), CLEAR_WARNING_BLINK)
    factory.pin(CLEAR).drive_high()
    assert teacher.clears == 0


def test_status_led_stops_flickering_once_cleared(factory, teacher, open_panel):
    open_panel()
    led = factory.pin(STATUS_LED)
    factory.pin(CLEAR).drive_low()
    wait_until(lambda: teacher.clears, "the hold to clear")
    wait_until(lambda: led.state, "the status LED to be on")
    changes = len(led.states)
    time.sleep(0.3)  # six flicker periods
    assert len(led.states) == changes and led.state


# -- LEDs ----------------------------------------------------------------------


def test_status_led_is_steady_on_while_idle(factory, open_panel):
    open_panel()
    led = factory.pin(STATUS_LED)
    wait_until(lambda: led.state, "the status LED to light")
    changes = len(led.states)
    time.sleep(0.3)
    assert len(led.states) == changes and led.state


def test_status_led_blinks_while_recording(factory, open_panel):
    panel = open_panel(settings(hold_time=0.1))
    led = factory.pin(STATUS_LED)
    since = len(led.states)
    factory.pin(CAT).drive_low()
    wait_until(lambda: panel.is_recording, "the hold to start recording")
    assert_blinks_like(blink_times(led, since), RECORDING_BLINK)


def test_show_prediction_lights_only_that_class_led(factory, open_panel):
    panel = open_panel()
    panel.show_prediction("dog")
    assert (factory.pin(CAT_LED).state, factory.pin(DOG_LED).state) == (False, True)
    panel.show_prediction("cat")
    assert (factory.pin(CAT_LED).state, factory.pin(DOG_LED).state) == (True, False)


@pytest.mark.parametrize("label", [None, "bird"], ids=["none", "class-without-button"])
def test_show_prediction_of_no_wired_class_turns_all_off(factory, open_panel, label):
    panel = open_panel()
    panel.show_prediction("cat")
    panel.show_prediction(label)
    assert (factory.pin(CAT_LED).state, factory.pin(DOG_LED).state) == (False, False)


# -- failures ------------------------------------------------------------------


def failing_once(teacher: Teacher):
    calls = []

    def add(label: str) -> None:
        calls.append(label)
        if len(calls) == 1:
            raise OSError("disk full")
        teacher.add(label)

    return add


def test_failing_on_add_is_logged_and_blinks_the_error_pattern(factory, teacher, open_panel, caplog):
    open_panel(settings(hold_time=5.0), on_add=failing_once(teacher))
    led = factory.pin(STATUS_LED)
    wait_until(lambda: led.state, "the status LED to light")
    since = len(led.states)
    factory.pin(CAT).drive_low()
    factory.pin(CAT).drive_high()
    assert_blinks_like(blink_times(led, since), ERROR_BLINK)
    assert "disk full" in caplog.text


def test_panel_keeps_working_after_on_add_fails(factory, teacher, open_panel):
    open_panel(settings(hold_time=5.0), on_add=failing_once(teacher))
    for _ in range(2):
        factory.pin(CAT).drive_low()
        factory.pin(CAT).drive_high()
    wait_until(lambda: teacher.added == ["cat"], "the second press to be added")


def test_panel_keeps_working_after_on_clear_fails(factory, open_panel, caplog):
    calls = []

    def clear_failing_once() -> None:
        calls.append(None)
        if len(calls) == 1:
            raise OSError("store is read-only")

    open_panel(on_clear=clear_failing_once)
    for holds in (1, 2):
        factory.pin(CLEAR).drive_low()
        wait_until(lambda holds=holds: len(calls) == holds, f"hold {holds} to clear")
        factory.pin(CLEAR).drive_high()
    assert "store is read-only" in caplog.text


# -- closing -------------------------------------------------------------------


def test_close_releases_every_pin(factory, open_panel):
    panel = open_panel()
    for pin in (CAT, DOG, CLEAR):
        with pytest.raises(GPIOPinInUse):
            Button(pin, pin_factory=factory)
    for pin in (CAT_LED, DOG_LED, STATUS_LED):
        with pytest.raises(GPIOPinInUse):
            LED(pin, pin_factory=factory)
    panel.close()
    for pin in (CAT, DOG, CLEAR):
        Button(pin, pin_factory=factory).close()  # GPIOPinInUse if the panel still held it
    for pin in (CAT_LED, DOG_LED, STATUS_LED):
        LED(pin, pin_factory=factory).close()


def test_close_stops_recording_at_once(factory, teacher, open_panel):
    panel = open_panel(settings(hold_time=0.1))
    factory.pin(CAT).drive_low()
    wait_until(lambda: len(teacher.added) >= 3, "recording to start")
    started = time.monotonic()
    panel.close()
    assert time.monotonic() - started < 2.0
    count = len(teacher.added)
    time.sleep(0.3)
    assert len(teacher.added) == count
    assert not any(thread.name == WORKER for thread in threading.enumerate())


def test_close_gives_up_on_a_stuck_on_add_and_still_releases_pins(factory, open_panel, caplog):
    stuck = threading.Event()
    panel = open_panel(settings(hold_time=5.0), on_add=lambda label: stuck.wait(10))
    factory.pin(CAT).drive_low()
    factory.pin(CAT).drive_high()
    time.sleep(0.1)  # the worker is now inside on_add
    started = time.monotonic()
    panel.close(timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert "did not stop" in caplog.text
    Button(CAT, pin_factory=factory).close()
    stuck.set()
    wait_until(
        lambda: not any(thread.name == WORKER for thread in threading.enumerate()),
        "the worker to end once on_add returns",
    )


def test_after_close_twice_the_pins_are_free_and_late_predictions_light_nothing(factory, open_panel):
    # The daemon closes the panel while the processing loop may still show a prediction.
    panel = open_panel()
    panel.close()
    panel.close()
    panel.show_prediction("cat")  # neither raises nor lights a released pin
    panel.show_error()
    assert not factory.pin(CAT_LED).state
    assert not any(thread.name == WORKER for thread in threading.enumerate())
    for pin in (CAT, DOG, CLEAR):
        Button(pin, pin_factory=factory).close()  # GPIOPinInUse if the panel still held it
    for pin in (CAT_LED, DOG_LED, STATUS_LED):
        LED(pin, pin_factory=factory).close()


# -- settings and pins ----------------------------------------------------------

def test_pin_missing_from_the_board_names_its_key_and_frees_the_others(factory, open_panel):
    panel_settings = GpioConfig(buttons=(ButtonConfig(CAT, "cat"), ButtonConfig("GPIO99", "dog")))
    with pytest.raises(ConfigError, match=r"gpio\.buttons\[1\]\.pin.*GPIO99"):
        open_panel(panel_settings)
    Button(CAT, pin_factory=factory).close()


def test_one_pin_named_twice_names_the_second_use(open_panel):
    # BOARD11 is GPIO17 on a 40-pin header.
    panel_settings = GpioConfig(buttons=(ButtonConfig(CAT, "cat", led="BOARD11"),))
    with pytest.raises(ConfigError, match=r"gpio\.buttons\[0\]\.led"):
        open_panel(panel_settings)


def test_mock_pin_factory_opens_by_name():
    factory = open_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()
