"""Hypothesis against the running daemon over a real mosquitto.

Every command verb's payload (fields of every JSON type, wrong and right) and
raw bytes on every topic the daemon subscribes to: each message gets exactly
one reply (none on cmd/result), never an internal error, the daemon stays up,
and its peak RSS stays within the image decode budget of where it started.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import IMAGES, MODELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeknn.images import decode_budget
from edgeknn.mqtt.commands import FIELDS, VERBS
from edgeknn.tools.devbroker import LocalBroker
from edgeknn.tools.harness import TOPICS, Commander, DaemonProcess, make_frames

pytestmark = pytest.mark.slow


def small_image(fmt: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 120, 200)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
field_values = {
    "id": json_values,
    "label": st.sampled_from(["cat", "dog", "", " ", "a/b", "x" * 300, "\u0000", "caf\u00e9"]) | json_values,
    "count": st.sampled_from([0, 1, 2, 101, -1, True, 1.5, "3", None]),  # cheap adds only
    "image": st.sampled_from([small_image("PNG"), small_image("WEBP"), "data:image/png;base64,"
                              + small_image("PNG"), "not base64!", "", base64.b64encode(b"\x89PNG\r\n").decode()])
    | st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | json_values,
    "target": st.sampled_from(["frame", "largest_object", "nope"]) | json_values,
    "example_id": st.integers(-3, 2**64) | json_values,
    "confirm": st.sampled_from([True, False, "true", 1]),
    "from": st.sampled_from(["cat", "dog", "owl", ""]) | json_values,
    "to": st.sampled_from(["cat", "kitty", ""]) | json_values,
}


def payloads(verb: str) -> st.SearchStrategy[bytes]:
    known = st.fixed_dictionaries({}, optional={f: field_values[f] for f in sorted(FIELDS[verb])})
    extra = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
    objects = st.tuples(known, extra).map(lambda pair: {**pair[1], **pair[0]})
    return objects.map(lambda obj: json.dumps(obj).encode()) | st.binary(max_size=300)


verbs_and_payloads = st.sampled_from(VERBS).flatmap(lambda v: st.tuples(st.just(v), payloads(v)))
# Topic levels a broker accepts (it disconnects a client that sends control
# characters or non-characters in a topic): the daemon sees whatever gets through.
odd_verbs = st.text(st.characters(blacklist_characters="/+#", blacklist_categories=("Cc", "Cs", "Cn", "Co")),
                    min_size=1, max_size=12)
raw = st.tuples(st.sampled_from([*VERBS, "result"]) | odd_verbs, st.binary(max_size=500))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One daemon for the whole fuzz run, and how much memory it had once warm."""
    work = tmp_path_factory.mktemp("fuzz")
    broker = LocalBroker(work)
    broker.start()
    frames = make_frames(IMAGES, work / "frames")
    daemon = DaemonProcess(work, broker, frames, MODELS, fps=30)
    commander = Commander(broker)
    daemon.start()
    try:
        commander.wait_online()
        commander.request("add", {"label": "cat", "image": small_image("PNG")})  # warm
        yield daemon, commander, daemon.status()["peak_rss"]
    finally:
        daemon.stop()
        commander.close()
        broker.close()


def exchange(live, verb: str, payload: bytes) -> list[dict]:
    """Send one message, then a probe; once the probe is answered, every reply is in."""
    daemon, commander, _ = live
    key = commander.send(verb, payload, topic=TOPICS.command(verb) if verb != "result" else TOPICS.cmd_result)
    probe = commander.send("snapshot", {})
    assert commander.wait([probe], timeout=60), f"the daemon stopped answering\n{daemon.log()[-2000:]}"
    return [r.payload for r in commander.replies.get(key, [])]


def check(live, verb: str, replies: list[dict]) -> None:
    daemon, _, warm_peak = live
    expected = 0 if verb == "result" else 1
    assert len(replies) == expected, replies
    for reply in replies:
        assert reply["cmd"] == verb and isinstance(reply["ok"], bool)
        assert not str(reply.get("error", "")).startswith("internal error"), reply
    assert daemon.is_running()
    assert daemon.status()["peak_rss"] < warm_peak + decode_budget()


FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(message=verbs_and_payloads)
def test_every_payload_of_every_verb_gets_one_sane_reply(live, message):
    verb, payload = message
    check(live, verb, exchange(live, verb, payload))


@FUZZ
@given(message=raw)
def test_raw_bytes_on_every_subscribed_topic_get_at_most_one_reply(live, message):
    verb, payload = message
    check(live, verb, exchange(live, verb, payload))


def test_the_daemon_logged_no_traceback(live):
    daemon, _, _ = live
    assert "Traceback" not in daemon.log()
