"""The HTTP API of the running daemon: scripted camera -> real embedder -> store, real mosquitto.

What it must hold: writes need credentials and a refused write changes nothing;
bad uploads get a clear 4xx; errors are the MQTT commands' own; /metrics parses
with prometheus_client's parser; /healthz tells whether frames are processed.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import struct
import urllib.parse
import urllib.request
import zlib

import pytest
from conftest import IMAGES, ScriptedCamera, wait_until
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from webclient import PASSWORD, TOKEN, Http, web_section

from edgeknn.cameras import ReplayCamera
from edgeknn.images import load_image

CAT = [IMAGES / "imprinting" / f for f in ("cat_train_0.bmp", "cat_test_0.bmp")]
DOG = [IMAGES / "imprinting" / f for f in ("dog_train_0.bmp", "dog_test_0.bmp")]
CLASSES = "edgeknn/testpi/classes"


@pytest.fixture
def site(running, tmp_path):
    """A running daemon with its web server; returns (daemon, a fresh client)."""
    def start(camera=None, **web):
        daemon = running(camera or ScriptedCamera(CAT, DOG), web=web_section(tmp_path, **web))
        wait_until(lambda: daemon.processor.processed > 0, what="a first frame processed")
        return daemon, Http(daemon.web.url)
    return start


def taught(daemon, label: str = "cat") -> None:
    daemon.teacher.add(label, 1, None, None)


def png_bomb(width: int = 10_000, height: int = 10_000) -> bytes:
    """A real 1-bit PNG of 100 M pixels that compresses to a few KiB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bmp_bytes(path) -> bytes:
    return path.read_bytes()


# ----- nobody changes the store without credentials ----------------------------------


def test_writes_without_credentials_are_refused_and_change_nothing(site, listen):
    watch = listen("edgeknn/testpi/#")
    daemon, web = site()
    taught(daemon)
    wait_until(lambda: watch.on(CLASSES) and watch.on(CLASSES)[-1].json() == {"cat": 1}, what="classes")
    example_id = daemon.engine.store.examples()[0].id
    image = bmp_bytes(DOG[0])
    attempts = [
        ("add", {"label": "dog"}), ("remove", {"example_id": example_id}), ("remove", {"label": "cat"}),
        ("clear", {"confirm": True}), ("rename", {"from": "cat", "to": "kitten"}),
    ]
    for verb, body in attempts:
        reply = web.post(f"/api/cmd/{verb}", body)
        assert reply.status == 401, (verb, reply.body)
        assert reply.json()["ok"] is False and "log in" in reply.json()["error"]
    assert web.post("/api/cmd/add?label=dog", image, headers={"Content-Type": "image/bmp"}).status == 401
    wrong_token = web.post("/api/cmd/clear", {"confirm": True}, headers={
        "Content-Type": "application/json", "Authorization": "Bearer not-the-token"})
    assert wrong_token.status == 401
    assert web.login("wrong password").status == 401

    # logged in, but a forged request without the session's CSRF token
    assert web.login().status == 200
    web.csrf = None
    forged = web.post("/api/cmd/clear", {"confirm": True})
    assert forged.status == 403 and "X-CSRF-Token" in forged.json()["error"]

    assert daemon.engine.store.counts() == {"cat": 1}
    assert [e.id for e in daemon.engine.store.examples()] == [example_id]
    assert watch.on(CLASSES)[-1].json() == {"cat": 1}


def test_a_logged_in_browser_and_a_token_client_may_write(site, listen):
    watch = listen("edgeknn/testpi/#")
    daemon, web = site()
    assert web.get("/api/session").json()["can_write"] is False
    assert web.login().status == 200
    assert web.get("/api/session").json()["can_write"] is True
    reply = web.post("/api/cmd/add", {"id": "w1", "label": "cat", "count": 2})
    assert reply.status == 200 and reply.json()["counts"] == {"cat": 2} and reply.json()["id"] == "w1"

    api = Http(daemon.web.url)
    renamed = api.post("/api/cmd/rename", {"from": "cat", "to": "kitten"},
                       headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    assert renamed.status == 200 and renamed.json()["moved"] == 2
    wait_until(lambda: watch.on(CLASSES)[-1].json() == {"kitten": 2}, what="classes after the rename")

    assert web.post("/api/logout").status == 200
    assert web.post("/api/cmd/clear", {"confirm": True}).status == 401


def test_an_open_site_must_be_asked_for_in_the_config(site):
    daemon, web = site(anonymous_writes=True)
    assert web.post("/api/cmd/add", {"label": "cat"}).status == 200
    assert daemon.engine.store.counts() == {"cat": 1}


def test_protected_reads_need_a_login_but_health_stays_open(site):
    daemon, web = site(protect_reads=True)
    for path in ("/api/classes", "/metrics", "/snapshot.jpg", "/api/events", "/api/examples"):
        assert web.get(path).status == 401, path
    assert web.get("/healthz").status == 200
    web.login()
    assert web.get("/api/classes").status == 200


# ----- uploads ------------------------------------------------------------------------


def test_an_uploaded_image_teaches_one_example_and_mqtt_agrees(site, listen):
    watch = listen("edgeknn/testpi/#")
    daemon, web = site()
    web.login()
    reply = web.post("/api/cmd/add?label=dog", bmp_bytes(DOG[0]), headers={"Content-Type": "image/bmp"})
    assert reply.status == 200, reply.body
    assert reply.json()["counts"] == {"dog": 1}
    [example] = daemon.engine.store.examples("dog")
    assert example.source == "mqtt:image"
    thumb = web.get(f"/api/examples/{example.id}/thumbnail.jpg")
    assert thumb.status == 200 and Image.open(io.BytesIO(thumb.body)).format == "JPEG"
    wait_until(lambda: watch.on(CLASSES)[-1].json() == {"dog": 1}, what="classes with the upload")


@pytest.mark.parametrize(("body", "says"), [
    (b"this is not an image at all", "not an image"),
    (png_bomb(), "10000x10000 PNG is too large an image"),
])
def test_a_bad_upload_gets_a_clear_400_and_changes_nothing(site, body, says):
    daemon, web = site()
    web.login()
    taught(daemon)
    reply = web.post("/api/cmd/add?label=dog", body, headers={"Content-Type": "image/png"})
    assert reply.status == 400
    assert says in reply.json()["error"] and reply.json()["ok"] is False
    assert daemon.engine.store.counts() == {"cat": 1}
    assert web.get("/healthz").status == 200  # and the daemon goes on


def test_a_50_mb_upload_is_refused_before_it_is_sent(site):
    """As curl sends a large body: headers with ``Expect: 100-continue`` first; the
    server answers 413 without asking for the body."""
    daemon, web = site()
    taught(daemon)
    url = urllib.parse.urlsplit(daemon.web.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/api/cmd/add?label=dog")
    for name, value in {"Content-Type": "image/jpeg", "Content-Length": str(50 * 2**20),
                        "Expect": "100-continue", "Authorization": f"Bearer {TOKEN}"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert "at most 8388608 bytes (8 MiB)" in json.loads(response.read())["error"]
    conn.close()
    assert daemon.engine.store.counts() == {"cat": 1}


def test_http_and_mqtt_refuse_a_bad_command_with_the_same_message(site, listen):
    watch = listen("edgeknn/testpi/#")
    daemon, web = site()
    web.login()
    bad = [("add", {"id": "a", "label": "x/y"}), ("add", {"id": "b", "label": "cat", "count": 0}),
           ("remove", {"id": "c", "label": "ghost"}), ("clear", {"id": "d"}), ("rename", {"id": "e", "from": 5}),
           ("add", {"id": "f", "label": "cat", "image": base64.b64encode(b"nope").decode()}),
           ("teach", {"id": "g"})]
    for verb, body in bad:
        over_http = web.post(f"/api/cmd/{verb}", body)
        watch.send(f"edgeknn/testpi/cmd/{verb}", json.dumps(body).encode())
        wait_until(lambda body=body: any(m.json().get("id") == body["id"]
                                          for m in watch.on("edgeknn/testpi/cmd/result")), what=f"reply {body}")
        [over_mqtt] = [m.json() for m in watch.on("edgeknn/testpi/cmd/result") if m.json()["id"] == body["id"]]
        assert over_http.json() == over_mqtt, verb
        assert over_http.status == (404 if "ghost" in json.dumps(body) else 400)


# ----- reads, images, metrics, health -------------------------------------------------------


def test_examples_are_listed_newest_first_with_their_thumbnails(site):
    daemon, web = site()
    for label in ("cat", "cat", "dog"):
        taught(daemon, label)
    listing = web.get("/api/examples?label=cat").json()["examples"]
    assert [e["label"] for e in listing] == ["cat", "cat"] and listing[0]["id"] > listing[1]["id"]
    assert web.get(listing[0]["thumbnail"]).body[:3] == b"\xff\xd8\xff"
    assert web.get("/api/examples/999/thumbnail.jpg").status == 404
    assert web.get("/api/examples?limit=abc").status == 400
    assert web.get("/api/classes").json() == {"classes": {"cat": 2, "dog": 1}}


def test_the_snapshot_is_the_full_frame_and_the_stream_sends_jpeg_parts(site):
    daemon, web = site()
    wait_until(lambda: daemon.processor.processed > 5, what="frames processed")
    assert daemon.web.frames.encoded == 0  # nobody watched: nothing was encoded for the live view
    snap = Image.open(io.BytesIO(web.get("/snapshot.jpg").body))
    assert snap.format == "JPEG" and snap.size in {load_image(p).shape[1::-1] for p in CAT}  # full size
    with urllib.request.urlopen(daemon.web.url + "/stream.mjpeg", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        head = stream.read(2000)
    assert daemon.web.frames.encoded >= 1
    assert head.startswith(b"--edgeknnframe\r\nContent-Type: image/jpeg\r\n") and b"\xff\xd8\xff" in head


def test_metrics_parse_with_prometheus_clients_own_parser(site):
    daemon, web = site()
    taught(daemon, "cat")
    taught(daemon, "dog")
    wait_until(lambda: daemon.processor.processed > 3, what="some frames")
    text = web.get("/metrics").body.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"edgeknn_frames_processed", "edgeknn_fps", "edgeknn_inference_seconds", "edgeknn_class_examples",
            "edgeknn_mqtt_connected", "edgeknn_camera_ok", "edgeknn_store_examples"} <= families.keys()
    per_class = {s.labels["label"]: s.value for s in families["edgeknn_class_examples"].samples}
    assert per_class == {"cat": 1.0, "dog": 1.0}
    count = next(s for s in families["edgeknn_inference_seconds"].samples if s.name.endswith("_count"))
    assert count.value > 3
    assert families["edgeknn_camera_ok"].samples[0].value == 1.0
    wait_until(lambda: daemon.mqtt.is_connected, what="mqtt connected")
    text = web.get("/metrics").body.decode()
    connected = {f.name: f for f in text_string_to_metric_families(text)}["edgeknn_mqtt_connected"]
    assert connected.samples[0].value == 1.0


def test_healthz_is_200_only_while_frames_are_processed(site, tmp_path):
    ends = ReplayCamera(CAT, fps=10, loop=False)  # two frames, then the camera has no more
    daemon, web = site(ends)
    assert web.get("/healthz").status in (200, 503)  # two frames may already be done
    wait_until(lambda: web.get("/healthz").status == 503, what="health to fail without frames")
    assert web.get("/healthz").json()["ok"] is False


def test_the_page_and_its_files_come_from_the_device(site):
    daemon, web = site()
    page = web.get("/").body.decode()
    assert 'src="/static/app.js"' in page and "http" not in page.split("<body>")[0].replace(
        'name="viewport"', "")
    for path in ("/static/app.js", "/static/app.css"):
        assert web.get(path).status == 200
    assert web.get("/api/session").json()["login_possible"] is True
    assert PASSWORD not in page


def test_stopping_the_daemon_ends_open_streams_and_the_server(site):
    daemon, web = site()
    stream = urllib.request.urlopen(daemon.web.url + "/stream.mjpeg", timeout=10)
    events = urllib.request.urlopen(daemon.web.url + "/api/events", timeout=10)
    assert stream.read(100) and events.read(10)
    server = daemon.web.server
    daemon.stop()
    assert not server._thread.is_alive()
    for response in (stream, events):
        while response.read(65536):  # the server ended the stream: the reads reach its end
            pass
        response.close()


def test_a_port_in_use_is_a_clear_error_and_the_service_runs_without_the_page(running, tmp_path, caplog):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = running(ScriptedCamera(CAT, DOG), web=web_section(tmp_path, port=port))
        wait_until(lambda: daemon.processor.processed > 0, what="frames processed without the page")
    assert daemon.web is None
    assert f"web: cannot listen on 127.0.0.1:{port} (Address already in use)" in caplog.text
