"""The outbox's order and bounds, with a fake clock (no sockets)."""

from __future__ import annotations

from edgeknn.mqtt.outbox import Kind, Message, Outbox


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(topic: str, kind: Kind) -> Message:
    return Message(topic, topic.encode(), 1, kind == Kind.STATE, kind=kind)


def drain(box: Outbox) -> list[str]:
    out = []
    while (m := box.pop()) is not None:
        out.append(m.topic)
    return out


def test_replies_and_state_leave_before_predictions_in_the_order_made():
    box = Outbox(10)
    box.put(message("prediction1", Kind.BULK))
    box.put(message("reply1", Kind.REPLY))
    box.put(message("classes", Kind.STATE))
    box.put(message("prediction2", Kind.BULK))
    box.put(message("reply2", Kind.REPLY))
    assert drain(box) == ["reply1", "classes", "reply2", "prediction1", "prediction2"]


def test_a_full_outbox_drops_the_oldest_prediction_never_a_reply():
    box = Outbox(2)
    for i in range(50):
        box.put(message(f"reply{i}", Kind.REPLY))
        box.put(message(f"prediction{i}", Kind.BULK))
    out = drain(box)
    assert out == [f"reply{i}" for i in range(50)] + ["prediction48", "prediction49"]
    assert box.dropped == 48


def test_a_newer_state_replaces_the_queued_one():
    box = Outbox(10)
    box.put(message("classes", Kind.STATE))
    box.put(message("reply", Kind.REPLY))
    newer = Message("classes", b"newer", 1, True, kind=Kind.STATE)
    box.put(newer)
    assert drain(box) == ["reply", "classes"]


def test_predictions_older_than_max_age_are_dropped_not_replayed():
    clock = Clock()
    box = Outbox(100, max_age=5.0, clock=clock)
    for i in range(30):  # one a second through a 30 s outage
        box.put(message(f"prediction{i}", Kind.BULK))
        clock.now += 1
    assert drain(box) == ["prediction25", "prediction26", "prediction27", "prediction28",
                          "prediction29"]
    assert box.stale == 25


def test_replies_beyond_the_safety_bound_are_counted():
    box = Outbox(10, max_replies=3)
    assert all(box.put(message(f"r{i}", Kind.REPLY)) for i in range(3))
    assert not box.put(message("r3", Kind.REPLY))
    assert box.lost_replies == 1 and len(box) == 3
