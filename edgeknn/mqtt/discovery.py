"""Home Assistant MQTT discovery: the one device config that makes edgeknn appear.

Device-based discovery (Home Assistant 2024.11+): one retained JSON on
``<prefix>/device/<node>/config`` holds the device (``dev``), the origin
(``o``) and every entity as a component (``cmps``), with the availability
topic shared by all of them.  Keys are Home Assistant's abbreviations.

Identity: per-class components are keyed by the class's stable id from the
store, never by its label, so renaming a class keeps its entities, their
entity ids and the automations on them; only the names change.  A removed
class's components are sent as ``{"p": <platform>}`` stubs, which is how Home
Assistant is told to delete them.  ``default_entity_id`` suggests the entity
id when an entity is first seen (Home Assistant 2025.10+; older versions
derive the same id from the device and entity names).

Order matters to Home Assistant 2025.4, which stops reading a device config
at the first component still busy with the previous one: removals come
first, then the classes, newest first (a new class is what a change adds),
then the device's own entities.  The service also sends every config once
more a few seconds later (see service/homeassistant.py).

Labels are data, never template text.  Where a template must compare with a
label it holds a Jinja string literal from :func:`jinja_string`, which spells
every character outside ``[A-Za-z0-9 _-]`` as a ``\\u`` escape: quotes,
braces and ``{% raw %}`` cannot end the literal or open a block.

Everything here is pure: dataclasses in, dicts and bytes out.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgeknn import __version__
from edgeknn.labels import LABEL_PATTERN, MAX_LABEL_LENGTH
from edgeknn.mqtt.payloads import UNKNOWN_EVENT, to_json
from edgeknn.mqtt.topics import Topics

DEFAULT_PREFIX = "homeassistant"
ONLINE = "online"  # what Home Assistant publishes on <prefix>/status when it (re)starts

# Per-class components: key suffix -> platform.  Stubs for a removed class use these.
CLASS_PLATFORMS = {"sees": "binary_sensor", "teach": "button", "examples": "sensor"}

_JINJA_PLAIN = re.compile(r"[A-Za-z0-9 _-]")


def node_id(device_id: str) -> str:
    """The ``<node>`` topic level: the device id with every character outside
    ``[a-zA-Z0-9_-]`` replaced by ``_`` (Home Assistant ignores other topics)."""
    node = re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)
    return node if node.strip("_") else "edgeknn"


def discovery_topic(prefix: str, node: str) -> str:
    return f"{prefix}/device/{node}/config"


def status_topic(prefix: str) -> str:
    """Where Home Assistant announces itself (``online`` after each start)."""
    return f"{prefix}/status"


def jinja_string(text: str) -> str:
    """A Jinja string literal that evaluates to exactly ``text``, whatever it holds."""
    out = []
    for ch in text:
        if _JINJA_PLAIN.match(ch):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def slug(text: str) -> str:
    """Lower-case ASCII words joined by ``_`` (like Home Assistant's entity ids); may be empty."""
    ascii_text = unicodedata.normalize("NFKD", text.replace("'", "")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


@dataclass(frozen=True)
class ClassEntry:
    """A class as Home Assistant sees it: its stable id and its current label."""

    id: int
    label: str


@dataclass(frozen=True)
class DeviceDescription:
    """The device and what its entities need to know about the service."""

    node: str  # node_id(device_id)
    name: str  # the device name shown in Home Assistant
    prefix: str = DEFAULT_PREFIX
    expire_after: int = 10  # seconds without a prediction before "Sees" is unavailable
    detector: bool = False  # add the "Objects" sensor
    configuration_url: str | None = None  # the device page (the web UI), if there is one
    sw_version: str = __version__

    @property
    def topic(self) -> str:
        return discovery_topic(self.prefix, self.node)


def expire_after(prediction_interval: float) -> int:
    """Three missed predictions, and never under 10 s (an interval of 0 publishes every frame)."""
    return max(10, int(3 * prediction_interval + 0.999))


class _Components:
    """Builds the ``cmps`` dict: unique ids and default entity ids made one way."""

    def __init__(self, device: DeviceDescription) -> None:
        self._device = device
        self._entity_prefix = slug(device.name) or slug(device.node) or "edgeknn"
        self.cmps: dict[str, dict[str, object]] = {}

    def add(self, key: str, platform: str, name: str, entity_slug: str, **options: object) -> None:
        self.cmps[key] = {
            "p": platform,
            "name": name,
            "uniq_id": f"edgeknn_{self._device.node}_{key}",
            "default_entity_id": f"{platform}.{self._entity_prefix}_{entity_slug}",
            **options,
        }


def device_config(device: DeviceDescription, topics: Topics, classes: Sequence[ClassEntry],
                  removed: Iterable[int] = ()) -> dict[str, object]:
    """The whole discovery config; ``removed`` class ids get ``{"p": ...}`` stubs."""
    labels = [c.label for c in sorted(classes, key=lambda c: c.id)]
    c = _Components(device)  # the device's own entities
    per_class = _Components(device)
    diagnostic = {"ent_cat": "diagnostic"}

    sees: dict[str, object] = {"icon": "mdi:eye"}
    if labels:  # Home Assistant refuses an empty options list
        sees.update(dev_cla="enum", ops=labels)
    c.add("sees", "sensor", "Sees", "sees", stat_t=topics.prediction,
          val_tpl="{{ 'None' if value_json.unknown or value_json.label is none else value_json.label }}",
          json_attr_t=topics.prediction,
          json_attr_tpl="{{ {'confidence': (value_json.confidence or 0) | round(1)} | tojson }}",
          exp_aft=device.expire_after, **sees)
    c.add("recognised", "event", "Recognised", "recognised", stat_t=topics.event,
          evt_typ=list(dict.fromkeys([*labels, UNKNOWN_EVENT])), icon="mdi:eye-check")
    c.add("teach_new", "text", "Teach new class", "teach_new_class", cmd_t=topics.command("add"),
          cmd_tpl="{{ {'label': value} | tojson }}", ptrn=LABEL_PATTERN, min=1, max=MAX_LABEL_LENGTH,
          icon="mdi:school")
    c.add("snapshot", "image", "Snapshot", "snapshot", img_t=topics.snapshot, cont_type="image/jpeg")
    c.add("take_snapshot", "button", "Take snapshot", "take_snapshot", cmd_t=topics.command("snapshot"),
          pl_prs="{}", icon="mdi:camera")
    if device.detector:
        c.add("objects", "sensor", "Objects", "objects", stat_t=topics.detections,
              val_tpl="{{ value_json.objects | length }}", stat_cla="measurement", icon="mdi:shape",
              json_attr_t=topics.detections,
              json_attr_tpl="{{ {'labels': value_json.objects | map(attribute='label') | list} | tojson }}")

    for entry in sorted(classes, key=lambda e: e.id, reverse=True):  # the newest first
        key, literal = f"class_{entry.id}", jinja_string(entry.label)
        label_slug = slug(entry.label) or f"class_{entry.id}"
        per_class.add(f"{key}_sees", "binary_sensor", f"Sees {entry.label}", f"sees_{label_slug}",
                      stat_t=topics.prediction, exp_aft=device.expire_after, icon="mdi:eye",
                      val_tpl=f"{{{{ 'ON' if not value_json.unknown and value_json.label == {literal} else 'OFF' }}}}")
        per_class.add(f"{key}_teach", "button", f"Teach {entry.label}", f"teach_{label_slug}",
                      cmd_t=topics.command("add"), pl_prs=to_json({"label": entry.label}).decode(), icon="mdi:school")
        per_class.add(f"{key}_examples", "sensor", f"{entry.label} examples", f"{label_slug}_examples",
                      stat_t=topics.classes, val_tpl=f"{{{{ value_json[{literal}] | default(0) }}}}",
                      unit_of_meas="examples", stat_cla="measurement", icon="mdi:counter", **diagnostic)

    c.add("fps", "sensor", "Frame rate", "frame_rate", stat_t=topics.stats, val_tpl="{{ value_json.fps }}",
          unit_of_meas="fps", stat_cla="measurement", **diagnostic)
    c.add("inference", "sensor", "Inference time", "inference_time", stat_t=topics.stats,
          val_tpl="{{ value_json.inference_ms_p50 }}", unit_of_meas="ms", dev_cla="duration",
          stat_cla="measurement", **diagnostic)
    c.add("backend", "sensor", "Backend", "backend", stat_t=topics.stats, val_tpl="{{ value_json.backend }}",
          icon="mdi:chip", **diagnostic)
    c.add("store_size", "sensor", "Store size", "store_size", stat_t=topics.stats,
          val_tpl="{{ value_json.store_size }}", unit_of_meas="examples", stat_cla="measurement", **diagnostic)
    c.add("camera", "binary_sensor", "Camera", "camera", stat_t=topics.state, dev_cla="problem",
          val_tpl="{{ 'OFF' if value_json.camera == 'ok' else 'ON' }}", json_attr_t=topics.state,
          json_attr_tpl="{{ {'camera': value_json.camera} | tojson }}", **diagnostic)

    stubs = {f"class_{class_id}_{suffix}": {"p": platform}
             for class_id in sorted(set(removed) - {e.id for e in classes})
             for suffix, platform in CLASS_PLATFORMS.items()}

    dev: dict[str, object] = {"ids": [f"edgeknn_{device.node}"], "name": device.name, "mf": "edgeknn",
                           "mdl": "Teachable camera", "sw": device.sw_version}
    if device.configuration_url:
        dev["cu"] = device.configuration_url
    return {"dev": dev, "o": {"name": "edgeknn", "sw": device.sw_version}, "avty_t": topics.status,
            "cmps": {**stubs, **per_class.cmps, **c.cmps}}


def class_ids_in(payload: bytes) -> set[int]:
    """The class ids a config (ours, as retained by the broker) has components for;
    empty for anything that is not such a config."""
    try:
        cmps = json.loads(payload).get("cmps")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(cmps, dict):
        return set()
    return {int(m.group(1)) for key in cmps if (m := re.fullmatch(r"class_(\d+)_[a-z]+", str(key)))}


def config_payload(device: DeviceDescription, topics: Topics, classes: Sequence[ClassEntry],
                   removed: Iterable[int] = ()) -> bytes:
    return to_json(device_config(device, topics, classes, removed))
