"""The web page's pure parts: passwords, who may write, JPEG frames on demand, HTTP statuses."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import numpy as np
import pytest

from edgeknn.errors import (
    CameraError,
    CommandError,
    ImageError,
    PasswordError,
    StoreError,
    UnknownExample,
    UnknownLabel,
)
from edgeknn.results import Frame
from edgeknn.web import auth
from edgeknn.web.api import BodyTooLarge, http_status, image_request, read_body
from edgeknn.web.frames import JpegFrames

# ----- passwords -------------------------------------------------------------------


def test_a_password_verifies_against_its_hash_and_no_other():
    stored = auth.hash_password("correct horse")
    assert "correct horse" not in stored
    assert auth.verify_password("correct horse", stored)
    assert not auth.verify_password("correct hors", stored)
    assert auth.hash_password("correct horse") != stored  # salted


def test_a_damaged_hash_never_verifies():
    for stored in ["", "plain", "scrypt$1$2$3$###$###", "md5$a$b$c$d$e"]:
        assert not auth.verify_password("anything", stored)


def test_a_short_password_is_refused_with_the_minimum():
    with pytest.raises(PasswordError, match="at least 8"):
        auth.hash_password("short")


def test_the_password_file_is_private_and_replaced_whole(tmp_path):
    path = tmp_path / "sub" / "web-password"
    assert auth.read_password_hash(path) is None
    auth.write_password_hash(path, auth.hash_password("first password"))
    auth.write_password_hash(path, auth.hash_password("second password"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.verify_password("second password", auth.read_password_hash(path))
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_sudo_writes_the_password_file_for_the_services_user(tmp_path):
    state = tmp_path / "state"  # as /var/lib/edgeknn, owned by the service's user
    state.mkdir()
    os.chown(state, 65534, 65534)
    auth.write_password_hash(state / "web-password", auth.hash_password("for the service"))
    assert (state / "web-password").stat().st_uid == 65534


# ----- who may do what -----------------------------------------------------------------

RULES = {"token": "s3cret-token", "anonymous_writes": False, "protect_reads": False}


def test_nobody_writes_without_credentials_but_everybody_reads():
    decision = auth.access(auth.Credentials(), **RULES)
    assert decision.read and not decision.write and decision.status == 401


def test_protected_reads_need_credentials_too():
    assert not auth.access(auth.Credentials(), **{**RULES, "protect_reads": True}).read


def test_the_token_writes_and_a_wrong_one_is_refused():
    assert auth.access(auth.Credentials(bearer="s3cret-token"), **RULES).write
    wrong = auth.access(auth.Credentials(bearer="guess"), **RULES)
    assert not wrong.write and wrong.status == 401


def test_an_empty_token_in_the_config_lets_no_token_in():
    assert not auth.access(auth.Credentials(bearer=""), **{**RULES, "token": ""}).write
    assert auth.bearer_token("Bearer ") is None


def test_a_logged_in_browser_writes_only_with_its_csrf_token():
    session = {"logged_in": True, "session_csrf": "abc"}
    assert auth.access(auth.Credentials(**session, header_csrf="abc"), **RULES).write
    forged = auth.access(auth.Credentials(**session, header_csrf=None), **RULES)
    assert not forged.write and forged.status == 403 and "X-CSRF-Token" in forged.reason


def test_anonymous_writes_must_be_asked_for():
    assert auth.access(auth.Credentials(), **{**RULES, "anonymous_writes": True}).write


# ----- JPEG frames only when watched, at a bounded rate ----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(index: int) -> Frame:
    return Frame(np.full((48, 64, 3), index % 255, np.uint8), index, 0.0, 0.0)


def test_nothing_is_encoded_until_someone_asks():
    newest = [frame(0)]
    frames = JpegFrames(lambda: newest[0], max_fps=5, max_side=32, quality=70)
    for i in range(1, 20):
        newest[0] = frame(i)
    assert frames.encoded == 0
    jpeg = frames.latest()
    assert jpeg is not None and jpeg.frame_index == 19 and jpeg.data.startswith(b"\xff\xd8")
    assert frames.encoded == 1


def test_viewers_share_one_encoding_per_period_of_the_newest_frame():
    clock = Clock()
    newest = [frame(0)]
    frames = JpegFrames(lambda: newest[0], max_fps=5, max_side=32, quality=70, clock=clock)
    frames.latest()
    newest[0] = frame(1)
    clock.now += 0.1  # half a period: the cached JPEG is served
    assert frames.latest().frame_index == 0 and frames.encoded == 1
    clock.now += 0.15  # a period has passed
    assert frames.latest().frame_index == 1 and frames.encoded == 2
    clock.now += 1.0  # no new frame: nothing to encode
    assert frames.latest().frame_index == 1 and frames.encoded == 2


def test_before_the_first_frame_there_is_no_jpeg():
    assert JpegFrames(lambda: None, max_fps=5, max_side=32, quality=70).latest() is None


# ----- the API's outcomes -----------------------------------------------------------------


@pytest.mark.parametrize(("error", "status"), [
    (None, 200), (CommandError("label is missing"), 400), (ImageError("not an image"), 400),
    (UnknownLabel("no class"), 404), (UnknownExample("no example"), 404),
    (CameraError("no frame"), 503), (StoreError("read-only"), 409), (BodyTooLarge("big"), 413),
    (RuntimeError("bug"), 500),
])
def test_each_outcome_has_its_http_status(error, status):
    assert http_status(error) == status


def test_an_uploaded_image_becomes_the_mqtt_add_request():
    body = json.loads(image_request(b"\x89PNG...", {"label": "cat", "id": "7"}))
    assert body == {"label": "cat", "id": 7, "image": "iVBORy4uLg=="}


def chunks(*parts: bytes):
    async def gen():
        for part in parts:
            yield part
    return gen()


def test_a_body_over_the_limit_is_refused_as_soon_as_it_is_known():
    with pytest.raises(BodyTooLarge, match="52428800 bytes; at most 10"):
        asyncio.run(read_body(chunks(b""), str(50 * 2**20), limit=10))
    with pytest.raises(BodyTooLarge, match="over 10 bytes"):
        asyncio.run(read_body(chunks(b"123456", b"789012"), None, limit=10))
    assert asyncio.run(read_body(chunks(b"12345", b"67890"), "10", limit=10)) == b"1234567890"


# ----- the command that sets the password -------------------------------------------------


def test_edgeknn_web_password_writes_only_a_hash_where_the_config_says(tmp_path, monkeypatch, capsys):
    import io

    from edgeknn.cli import main

    target = tmp_path / "state" / "web-password"
    config = tmp_path / "config.toml"
    config.write_text(f'[web]\npassword_file = "{target}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    assert main(["web", "password", "--config", str(config), "--stdin"]) == 0
    assert str(target) in capsys.readouterr().out
    stored = target.read_text()
    assert "passphrase" not in stored and auth.verify_password("a long passphrase", stored)

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web", "password", "--config", str(config), "--stdin"]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert target.read_text() == stored  # unchanged


# ----- where Home Assistant's "Visit" link points ------------------------------------------


def test_the_page_url_home_assistant_links_to():
    from edgeknn.config import parse_config
    from edgeknn.web import page_url

    assert page_url(parse_config({}).web, "kitchen-pi") == "http://kitchen-pi:8080/"
    assert page_url(parse_config({"web": {"host": "192.0.2.7", "port": 80}}).web, "x") == "http://192.0.2.7:80/"
    assert page_url(parse_config({"web": {"enabled": False}}).web, "x") is None
