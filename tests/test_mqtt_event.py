"""``<base>/event``: one message each time the recognised label changes, for automations."""

import json

from edgeknn.mqtt import RecordingPublisher
from edgeknn.mqtt.payloads import Announcer
from edgeknn.mqtt.topics import Topics
from edgeknn.results import Prediction


def seen(label, unknown=False, confidence=0.9):
    return Prediction(label=label, confidence=confidence, scores={}, similarity=0.8, unknown=unknown)


def test_an_event_is_published_only_when_the_label_changes():
    publisher = RecordingPublisher()
    announcer = Announcer(publisher, Topics("edgeknn/kitchen"))
    changes = [announcer.recognised(p) for p in
               [seen("cat"), seen("cat"), seen("dog", confidence=0.75), seen("dog", unknown=True), seen(None, True)]]
    assert changes == [True, False, True, True, False]
    events = [json.loads(m.payload) for m in publisher.on("edgeknn/kitchen/event")]
    assert events == [{"event_type": "cat", "confidence": 0.9}, {"event_type": "dog", "confidence": 0.75},
                      {"event_type": "unknown", "confidence": 0.9}]
    assert not any(m.retain for m in publisher.on("edgeknn/kitchen/event"))  # a retained event would re-fire


def test_nothing_is_fired_while_the_camera_recognises_nothing_from_the_start():
    publisher = RecordingPublisher()
    announcer = Announcer(publisher, Topics("edgeknn/kitchen"))
    assert not announcer.recognised(seen(None, unknown=True))
    assert publisher.on("edgeknn/kitchen/event") == []
