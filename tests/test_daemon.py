"""The daemon end to end: scripted camera -> real embedder -> store -> real mosquitto.

The test is an MQTT subscriber and presses buttons on gpiozero's MockFactory pins.
"""

from __future__ import annotations

import base64
import json
import logging
import time

from conftest import CAT_PIN, CLEAR_PIN, DOG_PIN, IMAGES, ScriptedCamera, wait_until, write_service_config

CAT = [IMAGES / "imprinting" / f for f in ("cat_train_0.bmp", "cat_test_0.bmp")] + [IMAGES / "cat.bmp"]
DOG = [IMAGES / "imprinting" / f for f in ("dog_train_0.bmp", "dog_test_0.bmp")]
def press(factory, pin):
    factory.pin(pin).drive_low()
    time.sleep(0.05)
    factory.pin(pin).drive_high()


def predictions(listener):
    return [m.json() for m in listener.on("edgeknn/testpi/prediction")]


def replies(listener):
    return [m.json() for m in listener.on("edgeknn/testpi/cmd/result")]


def command(listener, verb, body):
    listener.send(f"edgeknn/testpi/cmd/{verb}", json.dumps(body).encode())


def reply_to(listener, request_id):
    wait_until(lambda: any(r.get("id") == request_id for r in replies(listener)), what=f"reply {request_id}")
    [reply] = [r for r in replies(listener) if r.get("id") == request_id]
    return reply


def latest_classes(listener):
    return listener.on("edgeknn/testpi/classes")[-1].json()


def test_taught_by_button_and_mqtt_it_sees_the_switch_from_cat_to_dog(running, listen):
    watch = listen("edgeknn/testpi/#")
    camera = ScriptedCamera(CAT, DOG)
    daemon = running(camera)
    watch.wait_for("edgeknn/testpi/status", b"online")
    wait_until(lambda: len(predictions(watch)) >= 3, what="predictions from an empty store")
    assert predictions(watch)[-1]["label"] is None

    press(daemon.factory, CAT_PIN)  # teach the cat on the camera now
    wait_until(lambda: latest_classes(watch) == {"cat": 1}, what="classes {cat: 1}")
    dog_jpeg = base64.b64encode((IMAGES / "imprinting" / "dog_train_0.bmp").read_bytes()).decode()
    command(watch, "add", {"id": "teach-dog", "label": "dog", "image": dog_jpeg})
    reply = reply_to(watch, "teach-dog")
    assert reply["ok"] is True and reply["counts"] == {"cat": 1, "dog": 1}
    wait_until(lambda: latest_classes(watch) == {"cat": 1, "dog": 1}, what="classes with dog")

    # cat frames keep being called cat now that two classes exist
    seen = len(predictions(watch))
    wait_until(lambda: len(predictions(watch)) >= seen + 5, what="more predictions")
    assert {p["label"] for p in predictions(watch)[seen:]} == {"cat"}

    camera.switch()
    wait_until(lambda: predictions(watch)[-1]["label"] == "dog", what="the prediction to switch to dog")
    first_dog = next(p["frame"] for p in predictions(watch) if p["label"] == "dog")
    assert camera.switched_at <= first_dog <= camera.switched_at + 4  # smoothing over 3
    last = predictions(watch)[-1]
    assert last["unknown"] is False and 0 < last["confidence"] <= 1
    assert set(last["scores"]) == {"cat", "dog"} and last["neighbors"][0]["label"] == "dog"
    assert last["ts"].endswith("Z") and last["latency_ms"] >= 0

    # exactly one reply per command
    assert len([r for r in replies(watch) if r.get("id") == "teach-dog"]) == 1


def test_a_hold_records_until_release_and_the_clear_button_forgets_all(running, listen):
    watch = listen("edgeknn/testpi/#")
    daemon = running(ScriptedCamera(CAT, DOG), gpio={"hold_time": 0.3, "record_rate": 10.0})
    watch.wait_for("edgeknn/testpi/status", b"online")
    wait_until(lambda: daemon.slot.latest is not None, what="a first frame")
    pin = daemon.factory.pin(CAT_PIN)
    pin.drive_low()
    wait_until(lambda: len(daemon.engine.store) >= 4, what="recording while held")
    pin.drive_high()
    time.sleep(0.5)
    after_release = len(daemon.engine.store)
    time.sleep(0.5)
    assert len(daemon.engine.store) == after_release  # recording stopped on release

    clear = daemon.factory.pin(CLEAR_PIN)
    press(daemon.factory, CLEAR_PIN)  # a short press does nothing
    time.sleep(0.3)
    assert len(daemon.engine.store) == after_release
    clear.drive_low()
    wait_until(lambda: len(daemon.engine.store) == 0, what="the clear button held")
    clear.drive_high()
    wait_until(lambda: latest_classes(watch) == {}, what="empty classes published")


def test_bad_commands_get_one_error_reply_each_and_the_daemon_keeps_going(running, listen):
    watch = listen("edgeknn/testpi/#")
    running(ScriptedCamera(CAT, DOG))
    watch.wait_for("edgeknn/testpi/status", b"online")
    bad = {
        "json": (b"{not json", "JSON"),
        "types": (json.dumps({"id": "types", "label": 5}).encode(), "label"),
        "slash": (json.dumps({"id": "slash", "label": "a/b"}).encode(), "label"),
        "long": (json.dumps({"id": "long", "label": "x" * 65}).encode(), "label"),
        "image": (json.dumps({"id": "image", "label": "a", "image": base64.b64encode(b"nope").decode()}).encode(),
                  "image"),
        "remove": (json.dumps({"id": "remove", "label": "ghost"}).encode(), "ghost"),
        "clear": (json.dumps({"id": "clear"}).encode(), "confirm"),
        "plus": (json.dumps({"id": "plus", "label": "a+b"}).encode(), "label"),
        "hash": (json.dumps({"id": "hash", "label": "a#b"}).encode(), "label"),
        "control": (json.dumps({"id": "control", "label": "bell\u0007"}).encode(), "control"),
        "count": (json.dumps({"id": "count", "label": "cat", "count": "3"}).encode(), "count"),
        "example": (json.dumps({"id": "example", "example_id": "x"}).encode(), "example_id"),
        "from": (json.dumps({"id": "from", "from": 5, "to": "b"}).encode(), "from"),
    }
    verbs = {"remove": "remove", "clear": "clear", "example": "remove", "from": "rename"}
    for key, (payload, _) in bad.items():
        watch.send(f"edgeknn/testpi/cmd/{verbs.get(key, 'add')}", payload)
    watch.send("edgeknn/testpi/cmd/explode", b'{"id": "verb"}')
    watch.send("edgeknn/testpi/cmd/add", b"x" * (10 * 1024 * 1024))
    watch.send("edgeknn/testpi/cmd/add", b"")  # empty: no label
    wait_until(lambda: len(replies(watch)) >= len(bad) + 3, timeout=20, what="a reply to every bad command")
    got = replies(watch)
    assert all(r["ok"] is False and r["error"] for r in got)
    by_id = {r["id"]: r for r in got if r.get("id")}
    for key, (_, word) in bad.items():
        if key != "json":
            assert word.lower() in by_id[key]["error"].lower(), (key, by_id[key])
    assert "explode" in by_id["verb"]["error"]
    anonymous = [r["error"] for r in got if r.get("id") is None]
    assert any("limit" in e or "bytes" in e for e in anonymous)  # the 10 MB payload
    assert any("label" in e for e in anonymous)  # the empty one
    # still alive and obedient
    command(watch, "add", {"id": "good", "label": "cat"})
    assert reply_to(watch, "good")["ok"] is True
    assert len(replies(watch)) == len(got) + 1


def test_a_broker_outage_loses_nothing_and_the_daemon_comes_back(running, listen, mosquitto, caplog):
    daemon = running(ScriptedCamera(CAT, DOG))
    watch = listen("edgeknn/testpi/#")
    watch.wait_for("edgeknn/testpi/status", b"online")
    wait_until(lambda: daemon.slot.latest is not None, what="a first frame")
    press(daemon.factory, CAT_PIN)
    wait_until(lambda: len(daemon.engine.store) == 1, what="one example")
    watch.close()

    mosquitto.stop()
    wait_until(lambda: not daemon.mqtt.is_connected, what="the daemon to see the broker gone")
    press(daemon.factory, DOG_PIN)  # it keeps learning while the broker is down
    wait_until(lambda: len(daemon.engine.store) == 2, what="an example taught offline")
    # the broker comes back only after the daemon has tried it and failed: a real outage
    # (a warning from the MQTT client other than the one about losing the broker)
    wait_until(lambda: any(r.name.startswith("edgeknn.mqtt") and r.levelno >= logging.WARNING
                           and not r.getMessage().startswith("lost MQTT broker") for r in caplog.records),
               timeout=20, what="a failed reconnect")
    mosquitto.start()

    again = listen("edgeknn/testpi/#")
    wait_until(lambda: daemon.mqtt.is_connected, timeout=20, what="the daemon to reconnect")
    again.wait_for("edgeknn/testpi/status", b"online")
    wait_until(lambda: again.on("edgeknn/testpi/classes")
               and latest_classes(again) == {"cat": 1, "dog": 1}, what="classes re-announced")
    command(again, "rename", {"id": "after", "from": "dog", "to": "puppy"})  # still subscribed
    assert reply_to(again, "after")["ok"] is True
    assert daemon.engine.store.counts() == {"cat": 1, "puppy": 1}


def test_snapshot_publishes_the_current_frame_as_jpeg(running, listen):
    watch = listen("edgeknn/testpi/#")
    daemon = running(ScriptedCamera(CAT, DOG))
    watch.wait_for("edgeknn/testpi/status", b"online")
    wait_until(lambda: daemon.slot.latest is not None, what="a first frame")
    command(watch, "snapshot", {"id": "snap"})
    assert reply_to(watch, "snap")["ok"] is True
    [jpeg] = watch.wait_for("edgeknn/testpi/snapshot")
    assert jpeg.payload[:3] == b"\xff\xd8\xff"


def test_stats_say_backend_rate_and_store_size(running, listen):
    watch = listen("edgeknn/testpi/#")
    running(ScriptedCamera(CAT, DOG))
    wait_until(lambda: any(m.json()["fps"] > 0 for m in watch.on("edgeknn/testpi/stats")),
               what="stats with a frame rate")
    stats = watch.on("edgeknn/testpi/stats")[-1].json()
    assert stats["backend"] == "cpu" and stats["store_size"] == 0 and stats["uptime_s"] > 0
    assert {"dropped_frames", "inference_ms_p50", "inference_ms_p95"} <= stats.keys()
    # On the CPU the default classifier classifies single frames (crop views at teach time only).
    assert stats["classifier"]["method"] == "logreg" and stats["classifier"]["views"] == "crops"
    assert "1 invoke per frame" in stats["classifier"]["views_cost"]
    assert stats["classifier"]["features"].startswith("pow0.5-mean")


def test_the_service_reloads_on_sighup_and_stops_on_sigterm_within_5_s_saying_offline(tmp_path, mosquitto, listen):
    import os
    import signal
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    # A synthetic test pattern is nothing like the cat photo, so the default threshold
    # (0.25), or even 0.0 (the cosine to the cat's mean feature can be below 0), would call it
    # unknown from the start: begin with "never unknown".
    write_service_config(config, tmp_path, mosquitto, "[classifier]\nunknown_threshold = -1.0\n")
    watch = listen("edgeknn/testpi/#")
    proc = subprocess.Popen([sys.executable, "-m", "edgeknn", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        watch.wait_for("edgeknn/testpi/status", b"online")
        wait_until(lambda: len(predictions(watch)) >= 2, what="predictions from the service")
        photo = base64.b64encode((IMAGES / "imprinting" / "cat_train_0.bmp").read_bytes()).decode()
        command(watch, "add", {"id": "teach", "label": "cat", "image": photo})
        assert reply_to(watch, "teach")["ok"] is True
        # while the smoothing window still holds the frames from before the add, the label is
        # shown with unknown true; wait for the window to fill with cat
        wait_until(lambda: predictions(watch)[-1]["label"] == "cat" and predictions(watch)[-1]["unknown"] is False,
                   what="synthetic frames called cat, not unknown")

        # SIGHUP: a synthetic frame is nothing like the cat photo (similarity far below 0.999),
        # and an unchanged label is now repeated only once an hour
        write_service_config(config, tmp_path, mosquitto,
                             "[classifier]\nunknown_threshold = 0.999\n[pipeline]\nprediction_interval = 3600\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: predictions(watch)[-1]["unknown"] is True, what="the new threshold to apply")
        seen = len(predictions(watch))
        time.sleep(1.5)  # 20 frames at 15 fps, all unknown: nothing new to say
        assert len(predictions(watch)) == seen

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log = proc.stderr.read()
        proc.stderr.close()
    assert watch.on("edgeknn/testpi/status")[-1].payload == b"offline"
    assert "reloaded" in log
    assert "Traceback" not in log


def test_a_bad_config_stops_start_up_with_one_line_naming_the_key(tmp_path, mosquitto):
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    write_service_config(config, tmp_path, mosquitto, "[classifier]\nk = 0\n")
    result = subprocess.run([sys.executable, "-m", "edgeknn", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgeknn: error:")]
    assert len(errors) == 1 and "classifier.k" in errors[0]
