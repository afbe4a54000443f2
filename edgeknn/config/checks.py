"""Value checks used by the config schema: pins, MQTT topics, labels, Edge TPU devices.

Each takes a value already of the right type and returns it (possibly
normalised) or raises ``ValueError`` with an "expected ..." message; the
validator puts the key path in front.  Where a rule belongs to the part that
uses the value (topics, labels, Edge TPU devices), the check here only calls
that part's rule, so each rule is stated once.
"""

from __future__ import annotations

import re

from edgeknn.config.validate import shown
from edgeknn.errors import EdgeTpuError
from edgeknn.labels import validate_label
from edgeknn.mqtt.topics import check_base_topic, check_device_id
from edgeknn.vision.runtime import validate_device

# The 40-pin header: physical (BOARD) pin -> BCM GPIO number.  The other header
# pins are power and ground.  Needed to see that BOARD11 and GPIO17 are one pin.
BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24,
    19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12,
    33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}
MAX_BCM = 53  # the BCM2711 has GPIO0..57, of which 0..53 reach a Compute Module's pins
PIN_EXPECT = 'a BCM GPIO number or a pin name like "GPIO17", "BCM17" or "BOARD11"'
_PIN_NAME = re.compile(r"^(GPIO|BCM|BOARD|J8:)(\d+)$", re.IGNORECASE)


def canonical_pin(value: int | str) -> str:
    """The ``GPIOn`` name of a pin in any form gpiozero takes: 17, "GPIO17", "BOARD11", "J8:11"."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str) and (m := _PIN_NAME.match(value.strip())):
        kind, number = m.group(1).upper(), int(m.group(2))
        if kind in ("BOARD", "J8:"):
            if number not in BOARD_TO_BCM:
                raise ValueError(f"header pin {value} is power or ground, not a GPIO pin")
            number = BOARD_TO_BCM[number]
    else:
        raise ValueError(f"expected {PIN_EXPECT}, got {shown(value)}")
    if not 0 <= number <= MAX_BCM:
        raise ValueError(f"expected {PIN_EXPECT} (GPIO 0..{MAX_BCM}), got {shown(value)}")
    return f"GPIO{number}"


def pin(value: int | str) -> int | str:
    """A required pin: checked, returned as written (gpiozero understands every form)."""
    canonical_pin(value)
    return value


def optional_pin(value: int | str) -> int | str:
    """A pin, or "" for none."""
    return value if value == "" else pin(value)


def device_id(value: str) -> str:
    """A device id by :func:`edgeknn.mqtt.topics.check_device_id`, or "" for the host name."""
    return value if value == "" else check_device_id(value)


def topic(value: str) -> str:
    """A topic prefix (``mqtt.base_topic``, ``homeassistant.prefix``) by
    :func:`edgeknn.mqtt.topics.check_base_topic`, or "" for the default."""
    return value if value == "" else check_base_topic(value)


def host(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"expected a host name or IP address, got {shown(value)}")
    return value


def non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def label(value: str) -> str:
    return validate_label(value)  # LabelError is a ValueError: its message names the problem


def tpu_device(value: str) -> str:
    """An Edge TPU device ("usb", "usb:0", "pci:0", ":0") or "" for the first found."""
    try:
        validate_device(value)
    except EdgeTpuError as exc:
        raise ValueError(str(exc)) from None
    return value
