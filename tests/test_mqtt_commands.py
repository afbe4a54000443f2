"""Commands on <base>/cmd/<verb>: what is accepted, what is refused and how it is answered."""

from __future__ import annotations

import base64
import io
import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeknn.errors import CommandError, UnknownExample, UnknownLabel
from edgeknn.mqtt.commands import (
    AddCommand,
    ClearCommand,
    RemoveCommand,
    RenameCommand,
    SnapshotCommand,
    handle_message,
    parse_command,
    result_payload,
)


def png_base64(width: int = 8, height: int = 6) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 40)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def payload(obj: object) -> bytes:
    return json.dumps(obj).encode()


class FakeStore:
    """A CommandTarget that records what it was asked and knows one class, 'cat'."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.counts = {"cat": 3}

    def add(self, label, count, image, target):
        self.calls.append(("add", label, count, image, target))
        self.counts[label] = self.counts.get(label, 0) + count
        return {"example_ids": list(range(count)), "counts": dict(self.counts)}

    def remove_label(self, label):
        if label not in self.counts:
            raise UnknownLabel(f"no class {label!r}; known: {', '.join(sorted(self.counts))}")
        self.calls.append(("remove_label", label))
        return {"removed": self.counts.pop(label)}

    def remove_example(self, example_id):
        raise UnknownExample(f"no example with id {example_id}")

    def clear(self):
        self.calls.append(("clear",))
        return {"removed": sum(self.counts.values())}

    def rename(self, old, new):
        self.calls.append(("rename", old, new))
        return {}

    def snapshot(self):
        self.calls.append(("snapshot",))
        return {"bytes": np.int64(1234), "size": np.array([640, 480])}


class BrokenStore(FakeStore):
    def snapshot(self):
        return 1 / 0


def reply(verb: str, data: bytes, target=None) -> dict:
    return json.loads(handle_message(verb, data, target or FakeStore()))


def refused(verb: str, data: bytes) -> str:
    with pytest.raises(CommandError) as info:
        parse_command(verb, data)
    return str(info.value)


# -- good requests -------------------------------------------------------------

def test_add_needs_only_a_label():
    assert parse_command("add", payload({"label": "cat"})) == AddCommand("cat", 1, None, "frame")


def test_add_takes_count_target_and_id():
    command = parse_command("add", payload({"label": "Käse 🧀", "count": 100,
                                            "target": "largest_object", "id": "r1"}))
    assert command == AddCommand("Käse 🧀", 100, None, "largest_object", "r1")


def test_add_decodes_a_base64_image():
    command = parse_command("add", payload({"label": "cat", "image": png_base64(8, 6)}))
    assert command.image.shape == (6, 8, 3)
    assert command.image[0, 0].tolist() == [200, 30, 40]


def test_add_accepts_a_data_url_and_wrapped_base64():
    wrapped = "\n".join(png_base64()[i:i + 20] for i in range(0, len(png_base64()), 20))
    for image in (f"data:image/png;base64,{png_base64()}", wrapped):
        assert parse_command("add", payload({"label": "cat", "image": image})).image is not None


def test_remove_by_label_or_by_example_id():
    assert parse_command("remove", payload({"label": "cat"})) == RemoveCommand(label="cat")
    assert parse_command("remove", payload({"example_id": 7, "id": 3})) == \
        RemoveCommand(example_id=7, request_id=3)


def test_clear_with_confirm_true():
    assert parse_command("clear", payload({"confirm": True, "id": 1.5})) == ClearCommand(1.5)


def test_rename_from_to():
    assert parse_command("rename", payload({"from": "cat", "to": "kitty"})) == \
        RenameCommand("cat", "kitty")


def test_an_empty_payload_is_an_empty_object():
    assert parse_command("snapshot", b"") == SnapshotCommand()
    assert parse_command("snapshot", b"  \n") == SnapshotCommand()
    assert refused("add", b"") == "label is missing"


# -- bad requests name what is wrong ------------------------------------------

def test_unknown_verb_lists_the_known_ones():
    assert refused("explode", b"{}") == \
        "unknown command 'explode'; known: add, clear, remove, rename, snapshot"


@pytest.mark.parametrize("data", [b"{", b"{'label': 'cat'}", b"\xff\xfe\x00garbage", b"NaN",
                                  b'{"label": "cat", "count": Infinity}'])
def test_invalid_json_is_refused(data):
    assert refused("add", data).startswith("payload is not valid JSON")


@pytest.mark.parametrize("data, kind", [(b"[1, 2]", "an array"), (b'"cat"', "a string"),
                                        (b"3", "an integer"), (b"null", "null")])
def test_payload_must_be_an_object(data, kind):
    assert refused("add", data) == f"payload must be a JSON object, got {kind}"


def test_deeply_nested_json_is_refused_not_a_crash():
    assert refused("add", b"[" * 100_000 + b"]" * 100_000) == \
        "payload is nested too deeply to be a command"


def test_unknown_fields_are_named():
    message = refused("add", payload({"label": "cat", "colour": 1, "size": 2}))
    assert message == ("unknown fields 'colour', 'size' for add; "
                       "known: count, id, image, label, target")


def test_payload_over_the_limit_is_refused_before_parsing():
    big = b'{"label": "cat", "image": "' + b"A" * (10 * 1024 * 1024 - 29) + b'"}'
    assert len(big) == 10485760
    assert refused("add", big) == "payload is 10485760 bytes; limit 8388608"


@pytest.mark.parametrize("count, shown", [(True, "a boolean"), (0, "0"), (101, "101"),
                                          (2.5, "2.5"), ("3", "a string"), (None, "null")])
def test_count_must_be_an_integer_from_1_to_100(count, shown):
    assert refused("add", payload({"label": "cat", "count": count})) == \
        f"count must be an integer from 1 to 100, got {shown}"


def test_count_and_image_do_not_mix():
    message = refused("add", payload({"label": "cat", "count": 5, "image": png_base64()}))
    assert message.startswith("count must be 1 with an image")


def test_target_must_be_frame_or_largest_object():
    assert refused("add", payload({"label": "cat", "target": "face"})) == \
        "target must be one of frame, largest_object, got 'face'"


@pytest.mark.parametrize("image, message", [
    ("not base64 at all!", "image is not valid base64"),
    (base64.b64encode(b"hello, not an image").decode(), "image: not an image (unrecognised format)"),
    ("", "image is empty"),
    (42, "image must be a base64 string, got an integer"),
])
def test_image_must_be_a_base64_image(image, message):
    assert refused("add", payload({"label": "cat", "image": image})) == message


def test_truncated_image_is_refused():
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="JPEG")
    half = base64.b64encode(buf.getvalue()[: len(buf.getvalue()) // 2]).decode()
    message = refused("add", payload({"label": "cat", "image": half}))
    assert message.startswith("image: damaged or truncated image")


@pytest.mark.parametrize("label, problem", [
    ("a/b", "contains '/'"), ("a+b", "contains '+'"), ("a#b", "contains '#'"),
    ("a\x00b", "control character (U+0000)"), ("a\nb", "control character (U+000A)"),
    ("x" * 65, "is 65 characters; at most 64"), ("", "is empty"), (" cat", "white space"),
    (3, "must be a string, got int"),
])
def test_bad_labels_are_refused_naming_the_field(label, problem):
    for verb, body, field in [("add", {"label": label}, "label"),
                              ("remove", {"label": label}, "label"),
                              ("rename", {"from": "cat", "to": label}, "to")]:
        message = refused(verb, payload(body))
        assert message.startswith(field) and problem in message, message


def test_a_64_character_label_is_fine():
    assert parse_command("add", payload({"label": "x" * 64})).label == "x" * 64


def test_rename_to_the_same_name_is_refused():
    assert refused("rename", payload({"from": "cat", "to": "cat"})) == "to is the same as from ('cat')"


@pytest.mark.parametrize("body", [{}, {"label": "cat", "example_id": 1}])
def test_remove_needs_exactly_one_of_label_or_example_id(body):
    assert refused("remove", payload(body)) == "remove needs exactly one of label or example_id"


@pytest.mark.parametrize("example_id", [True, -1, "7", 2**63])
def test_example_id_must_be_a_non_negative_integer(example_id):
    assert refused("remove", payload({"example_id": example_id})).startswith(
        "example_id must be an integer from 0 to")


@pytest.mark.parametrize("body", [{}, {"confirm": False}, {"confirm": "yes"}, {"confirm": 1}])
def test_clear_without_confirm_true_is_refused(body):
    assert refused("clear", payload(body)).startswith("confirm must be true")


@pytest.mark.parametrize("request_id, message", [
    (True, "id must be a string or a number, got a boolean"),
    ({"a": 1}, "id must be a string or a number, got an object"),
    ("r" * 129, "id is 129 characters; at most 128"),
    (1e400, "id must be a finite number"),
])
def test_bad_ids_are_refused(request_id, message):
    data = payload({"id": request_id}).replace(b"Infinity", b"1e400")
    assert refused("snapshot", data) == message


# -- handle_message: one reply for every request ---------------------------------

def test_a_good_command_is_carried_out_and_answered():
    store = FakeStore()
    answer = reply("add", payload({"label": "dog", "count": 2, "id": "r1"}), store)
    assert answer == {"id": "r1", "cmd": "add", "ok": True, "example_ids": [0, 1],
                      "counts": {"cat": 3, "dog": 2}}
    assert store.calls == [("add", "dog", 2, None, "frame")]


def test_the_id_is_null_when_the_request_has_none():
    assert reply("snapshot", b"")["id"] is None


def test_a_bad_request_is_answered_with_its_id_and_not_carried_out():
    store = FakeStore()
    answer = reply("clear", payload({"confirm": "yes", "id": 42}), store)
    assert answer["id"] == 42 and answer["cmd"] == "clear" and answer["ok"] is False
    assert answer["error"].startswith("confirm must be true")
    assert store.calls == []


def test_an_unknown_field_reply_still_echoes_the_id():
    answer = reply("add", payload({"label": "cat", "colour": "red", "id": "r9"}))
    assert answer["id"] == "r9" and "colour" in answer["error"]


def test_invalid_json_is_answered_with_a_null_id():
    answer = reply("add", b'{"id": "r1", ')
    assert answer["ok"] is False and answer["id"] is None
    assert answer["error"].startswith("payload is not valid JSON")


def test_an_oversized_payload_is_answered():
    answer = reply("add", b" " * (10 * 1024 * 1024))
    assert answer == {"id": None, "cmd": "add", "ok": False,
                      "error": "payload is 10485760 bytes; limit 8388608"}


def test_an_unknown_verb_is_answered_naming_it():
    answer = reply("explode", payload({"id": 5}))
    assert answer["id"] == 5 and answer["cmd"] == "explode" and "unknown command" in answer["error"]


def test_removing_an_unknown_label_is_answered_with_the_store_message():
    answer = reply("remove", payload({"label": "unicorn", "id": "x"}))
    assert answer == {"id": "x", "cmd": "remove", "ok": False,
                      "error": "no class 'unicorn'; known: cat"}


def test_removing_an_unknown_example_is_answered():
    answer = reply("remove", payload({"example_id": 99}))
    assert answer["ok"] is False and answer["error"] == "no example with id 99"


def test_numpy_values_in_a_result_become_json():
    assert reply("snapshot", b"{}") == {"id": None, "cmd": "snapshot", "ok": True,
                                        "bytes": 1234, "size": [640, 480]}


def test_a_bug_in_the_target_is_answered_as_internal_error_and_logged(caplog):
    with caplog.at_level(logging.ERROR, logger="edgeknn.mqtt"):
        answer = reply("snapshot", payload({"id": 1}), BrokenStore())
    assert answer == {"id": 1, "cmd": "snapshot", "ok": False,
                      "error": "internal error: ZeroDivisionError: division by zero"}
    assert caplog.records and caplog.records[-1].exc_info is not None


def test_result_fields_may_not_hide_the_reply_fields():
    with pytest.raises(ValueError, match="'cmd', 'id', 'ok'"):
        result_payload("add", 1, True, id=3, cmd="x", ok=False)


def test_result_fields_may_use_the_parameter_names():
    answer = json.loads(result_payload("add", 1, True, verb="v", request_id="r"))
    assert answer == {"id": 1, "cmd": "add", "ok": True, "verb": "v", "request_id": "r"}


def test_replies_keep_unicode_readable():
    data = handle_message("remove", payload({"label": "Käse"}), FakeStore())
    assert "Käse".encode() in data


@settings(max_examples=300, deadline=None)
@given(verb=st.sampled_from(["add", "remove", "clear", "rename", "snapshot", "x"]),
       data=st.one_of(st.binary(max_size=200),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                                   | st.text(max_size=20),
                                   lambda children: st.lists(children, max_size=4)
                                   | st.dictionaries(st.sampled_from(
                                       ["id", "label", "count", "image", "target", "confirm",
                                        "from", "to", "example_id", "other"]),
                                       children, max_size=5),
                                   max_leaves=10).map(
                          lambda obj: json.dumps(obj, allow_nan=True).encode())))
def test_any_payload_gets_exactly_one_json_reply_and_never_an_exception(verb, data):
    answer = json.loads(handle_message(verb, data, FakeStore()))
    assert answer["cmd"] == verb and isinstance(answer["ok"], bool)
    assert answer["ok"] or answer["error"]
