"""Commands on ``<base>/cmd/<verb>``: parse, dispatch, and answer every one.

    add       {"label", "count"?: 1..100, "image"?: base64 JPEG/PNG,
               "target"?: "frame" | "largest_object"}
    remove    {"label"} or {"example_id"} (exactly one)
    clear     {"confirm": true}
    rename    {"from", "to"}
    snapshot  {}

Every request may carry ``"id"`` (a string or a number), echoed in the reply.
An empty payload is ``{}``.  Every request, good or bad, gets exactly one reply:
``{"id", "cmd", "ok", "error"?, ...result}``.

:func:`parse_command` is strict and raises :class:`CommandError` naming the
field; :func:`handle_message` never raises, because a hostile payload must
never stop the daemon.  All of it is pure: the store sits behind
:class:`CommandTarget`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from edgeknn.errors import CommandError, EdgeKnnError
from edgeknn.images import MAX_PIXELS, decode_image
from edgeknn.labels import validate_label
from edgeknn.mqtt.payloads import to_json

log = logging.getLogger("edgeknn.mqtt")

MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_COUNT = 100
MAX_ID_LENGTH = 128
MAX_EXAMPLE_ID = 2**63 - 1  # SQLite's integer range
TARGETS = ("frame", "largest_object")
# Uploaded images are decoded no larger than this (longest side): enough for the
# detector to find an object and for a 224 px crop of it, and cheap to hold.
IMAGE_SIDE = 1024

RequestId = str | int | float | None


@dataclass(frozen=True)
class AddCommand:
    """Teach ``label`` from ``count`` camera frames, or from one uploaded image."""

    verb: ClassVar[str] = "add"
    label: str
    count: int = 1
    image: np.ndarray | None = field(default=None, compare=False, repr=False)
    target: str = "frame"  # or "largest_object": crop to the biggest detection first
    request_id: RequestId = None


@dataclass(frozen=True)
class RemoveCommand:
    """Forget a whole class (``label``) or one example (``example_id``)."""

    verb: ClassVar[str] = "remove"
    label: str | None = None
    example_id: int | None = None
    request_id: RequestId = None


@dataclass(frozen=True)
class ClearCommand:
    verb: ClassVar[str] = "clear"
    request_id: RequestId = None


@dataclass(frozen=True)
class RenameCommand:
    verb: ClassVar[str] = "rename"
    from_: str
    to: str
    request_id: RequestId = None


@dataclass(frozen=True)
class SnapshotCommand:
    verb: ClassVar[str] = "snapshot"
    request_id: RequestId = None


Command = AddCommand | RemoveCommand | ClearCommand | RenameCommand | SnapshotCommand

FIELDS: dict[str, frozenset[str]] = {
    "add": frozenset({"id", "label", "count", "image", "target"}),
    "remove": frozenset({"id", "label", "example_id"}),
    "clear": frozenset({"id", "confirm"}),
    "rename": frozenset({"id", "from", "to"}),
    "snapshot": frozenset({"id"}),
}
VERBS = tuple(sorted(FIELDS))


Reply = dict[str, object]
"""A reply's result fields: JSON-ready values (str, numbers, bool, None, lists and dicts of them)."""


class CommandTarget(Protocol):
    """What commands act on (the daemon's store and camera).  Each returns the
    reply's result fields, e.g. ``{"example_ids": [...], "counts": {...}}``, and
    raises an EdgeKnnError (UnknownLabel, UnknownExample, ...) to refuse."""

    def add(self, label: str, count: int, image: np.ndarray | None,
            target: str) -> Reply: ...

    def remove_label(self, label: str) -> Reply: ...

    def remove_example(self, example_id: int) -> Reply: ...

    def clear(self) -> Reply: ...

    def rename(self, old: str, new: str) -> Reply: ...

    def snapshot(self) -> Reply: ...


# -- parsing ---------------------------------------------------------------

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


def _kind(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_size(payload: bytes, limit: int = MAX_PAYLOAD_BYTES) -> None:
    if len(payload) > limit:
        raise CommandError(f"payload is {len(payload)} bytes; limit {limit}")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object; empty (or blank) means ``{}``."""
    if not payload.strip():
        return {}
    try:
        obj = json.loads(payload, parse_constant=_reject_constant)
    except RecursionError:
        raise CommandError("payload is nested too deeply to be a command") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CommandError(f"payload is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CommandError(f"payload must be a JSON object, got {_kind(obj)}")
    return obj


def parse_request_id(obj: dict[str, Any]) -> RequestId:
    value = obj.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CommandError(f"id must be a string or a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandError("id must be a finite number")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise CommandError(f"id is {len(value)} characters; at most {MAX_ID_LENGTH}")
    return value


def peek_id(payload: bytes, limit: int = MAX_PAYLOAD_BYTES) -> RequestId:
    """The request's id if it can be read at all, else None; never raises."""
    try:
        check_size(payload, limit)
        return parse_request_id(decode_json(payload))
    except CommandError:
        return None


def _check_fields(verb: str, obj: dict[str, Any]) -> None:
    unknown = sorted(set(obj) - FIELDS[verb])
    if unknown:
        names = ", ".join(_show(name) for name in unknown[:5])
        if len(unknown) > 5:
            names += ", ..."
        plural = "s" if len(unknown) > 1 else ""
        raise CommandError(
            f"unknown field{plural} {names} for {verb}; known: {', '.join(sorted(FIELDS[verb]))}"
        )


def _label(obj: dict[str, Any], name: str) -> str:
    if name not in obj:
        raise CommandError(f"{name} is missing")
    try:
        return validate_label(obj[name], name)
    except EdgeKnnError as exc:
        raise CommandError(str(exc)) from None


def _integer(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = obj[name]
    # bool is an int in Python but not in JSON: {"count": true} is a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = _kind(value) if not isinstance(value, int | float) or isinstance(value, bool) \
            else _show(value)
        raise CommandError(f"{name} must be an integer from {low} to {high}, got {shown}")
    return value


def _image(value: object, max_pixels: int) -> np.ndarray:
    if not isinstance(value, str):
        raise CommandError(f"image must be a base64 string, got {_kind(value)}")
    text = value
    if text.startswith("data:") and "," in text:  # a data URL from a browser or Node-RED
        text = text.split(",", 1)[1]
    text = "".join(text.split())  # MIME base64 is wrapped in lines
    if not text:
        raise CommandError("image is empty")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("image is not valid base64") from None
    try:
        return decode_image(data, "image", max_pixels=max_pixels, max_side=IMAGE_SIDE)
    except EdgeKnnError as exc:
        raise CommandError(str(exc)) from None


def _parse_add(obj: dict[str, Any], request_id: RequestId, max_pixels: int) -> AddCommand:
    label = _label(obj, "label")
    count = _integer(obj, "count", 1, MAX_COUNT) if "count" in obj else 1
    target = obj.get("target", "frame")
    if target not in TARGETS:
        raise CommandError(f"target must be one of {', '.join(TARGETS)}, got {_show(target)}")
    image = None
    if "image" in obj:
        if count != 1:
            raise CommandError("count must be 1 with an image; count is for camera frames")
        image = _image(obj["image"], max_pixels)
    return AddCommand(label, count, image, target, request_id)


def _parse_remove(obj: dict[str, Any], request_id: RequestId, max_pixels: int) -> RemoveCommand:
    if ("label" in obj) == ("example_id" in obj):
        raise CommandError("remove needs exactly one of label or example_id")
    if "label" in obj:
        return RemoveCommand(label=_label(obj, "label"), request_id=request_id)
    return RemoveCommand(example_id=_integer(obj, "example_id", 0, MAX_EXAMPLE_ID),
                         request_id=request_id)


def _parse_clear(obj: dict[str, Any], request_id: RequestId, max_pixels: int) -> ClearCommand:
    if obj.get("confirm") is not True:
        raise CommandError(
            'confirm must be true: clear deletes every example; send {"confirm": true}')
    return ClearCommand(request_id)


def _parse_rename(obj: dict[str, Any], request_id: RequestId, max_pixels: int) -> RenameCommand:
    old, new = _label(obj, "from"), _label(obj, "to")
    if old == new:
        raise CommandError(f"to is the same as from ({old!r})")
    return RenameCommand(old, new, request_id)


def _parse_snapshot(obj: dict[str, Any], request_id: RequestId, max_pixels: int) -> SnapshotCommand:
    return SnapshotCommand(request_id)


_PARSERS: dict[str, Callable[[dict[str, Any], RequestId, int], Command]] = {
    "add": _parse_add, "remove": _parse_remove, "clear": _parse_clear,
    "rename": _parse_rename, "snapshot": _parse_snapshot,
}


def parse_command(verb: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES, *,
                  max_image_pixels: int = MAX_PIXELS) -> Command:
    """A validated command, or CommandError naming the bad field.

    An uploaded image larger than ``max_image_pixels`` is refused from its
    header; smaller ones are decoded to at most IMAGE_SIDE, which bounds the
    memory one message can take (see images.decode_budget)."""
    if verb not in _PARSERS:
        raise CommandError(f"unknown command {_show(verb)}; known: {', '.join(VERBS)}")
    check_size(payload, max_bytes)
    obj = decode_json(payload)
    request_id = parse_request_id(obj)
    _check_fields(verb, obj)
    return _PARSERS[verb](obj, request_id, max_image_pixels)


# -- dispatch and replies --------------------------------------------------

def dispatch(command: Command, target: CommandTarget) -> Reply:
    """Carry out a parsed command; the target's result fields (never None)."""
    match command:
        case AddCommand():
            result = target.add(command.label, command.count, command.image, command.target)
        case RemoveCommand(label=str() as label):
            result = target.remove_label(label)
        case RemoveCommand(example_id=int() as example_id):
            result = target.remove_example(example_id)
        case ClearCommand():
            result = target.clear()
        case RenameCommand():
            result = target.rename(command.from_, command.to)
        case SnapshotCommand():
            result = target.snapshot()
        case _:
            raise TypeError(f"not a command: {command!r}")
    return dict(result or {})


RESERVED = frozenset({"id", "cmd", "ok", "error"})


def _plain(value: object) -> object:
    """numpy scalars and arrays (as a store may return) as JSON-ready values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def result_payload(verb: str, request_id: RequestId, ok: bool, /, error: str | None = None,
                   **result: Any) -> bytes:
    """The reply to one request: ``{"id", "cmd", "ok", "error"?, ...result}``."""
    clash = RESERVED & set(result)
    if clash:
        raise ValueError(f"result fields {sorted(clash)} would hide the reply's own")
    body: dict[str, Any] = {"id": request_id, "cmd": verb, "ok": bool(ok)}
    if error is not None:
        body["error"] = error
    body.update({key: _plain(value) for key, value in result.items()})
    return to_json(body)


def refuse(verb: str, payload: bytes, message: str) -> bytes:
    """An error reply to a request that will not be carried out (echoing its id if readable)."""
    return result_payload(verb, peek_id(payload), False, message)


@dataclass(frozen=True)
class Answer:
    """The reply to one request, and the error that refused it (None when carried out),
    so that the HTTP API can pick its status from the same outcome."""

    payload: bytes
    error: Exception | None = None


def handle_message(verb: str, payload: bytes, target: CommandTarget,
                   max_bytes: int = MAX_PAYLOAD_BYTES, *, max_image_pixels: int = MAX_PIXELS) -> bytes:
    """Parse, carry out and answer one request.  Never raises."""
    return answer(verb, payload, target, max_bytes, max_image_pixels=max_image_pixels).payload


def answer(verb: str, payload: bytes, target: CommandTarget,
           max_bytes: int = MAX_PAYLOAD_BYTES, *, max_image_pixels: int = MAX_PIXELS) -> Answer:
    """Parse, carry out and answer one request (MQTT and HTTP alike).  Never raises.

    EdgeKnnError (a bad field, an unknown label) becomes ``ok: false`` with its
    message; anything else is a bug, logged with its traceback and answered
    ``internal error: ...`` so that the daemon keeps running.
    """
    request_id = None
    try:
        command = parse_command(verb, payload, max_bytes, max_image_pixels=max_image_pixels)
        request_id = command.request_id
        return Answer(result_payload(verb, request_id, True, None, **dispatch(command, target)))
    except EdgeKnnError as exc:
        if request_id is None:
            request_id = peek_id(payload, max_bytes)
        return Answer(result_payload(verb, request_id, False, str(exc)), exc)
    except Exception as exc:
        log.exception("command %s failed", _show(verb))
        message = f"internal error: {type(exc).__name__}: {exc}"
        return Answer(result_payload(verb, request_id, False, message), exc)
