"""The Starlette application: the page, the JSON API, the live streams, metrics and health.

    GET  /                      the page (static files, no build step, nothing from a CDN)
    GET  /healthz               200 while frames are being processed, else 503
    GET  /metrics               Prometheus text
    GET  /snapshot.jpg          the newest frame, full size
    GET  /stream.mjpeg          the live view (multipart JPEG, at most web.stream_fps)
    GET  /api/events            server-sent events: prediction, classes, status
    GET  /api/session           whether this browser may write, its CSRF token
    POST /api/login, /api/logout
    GET  /api/classes, /api/examples?label=..., /api/examples/<id>/thumbnail.jpg,
         /api/prediction, /api/stats
    POST /api/cmd/<verb>        the MQTT verbs (see api.py)

Who may do what is decided by :func:`edgeknn.web.auth.access`, in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edgeknn.errors import PasswordError
from edgeknn.mqtt.commands import CommandTarget, result_payload
from edgeknn.mqtt.payloads import to_json
from edgeknn.store import Store
from edgeknn.web import auth
from edgeknn.web.api import BodyTooLarge, image_request, read_body, run_command
from edgeknn.web.frames import JpegFrames
from edgeknn.web.live import LiveView, Status
from edgeknn.web.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

SESSION_DAYS = 7
FAILED_LOGIN_DELAY = 1.0  # seconds, slowing down password guessing
EVENT_INTERVAL = 0.1  # seconds between checks for a new prediction (10 events/s at most)
CLASSES_EVERY = 0.3  # seconds between checks for changed classes
STATUS_EVERY = 2.0  # seconds between status events
MAX_EXAMPLES_LISTED = 200
BOUNDARY = "edgeknnframe"


@dataclass(frozen=True)
class Rules:
    """Who may do what (the ``web`` config's auth keys); :func:`auth.access` applies them."""

    password_file: Path
    token: str
    anonymous_writes: bool
    protect_reads: bool
    secure_cookie: bool


@dataclass(frozen=True)
class Parts:
    """What the web server reads and acts on, built by the daemon."""

    target: CommandTarget  # the Teacher: every write goes through it
    store: Store  # reads: counts, examples, thumbnails
    frames: JpegFrames
    live: LiveView
    status: Callable[[], Status]
    metrics: Metrics
    is_processing: Callable[[], bool]  # the service's health: frames are being processed
    hold_time: float  # like a hardware button: hold this long to record ...
    record_rate: float  # ... this many examples a second until released


def _json(body: object, status: int = 200) -> Response:
    return Response(to_json(body), status, media_type="application/json")


def _credentials(request: Request) -> auth.Credentials:
    session = request.session
    return auth.Credentials(
        logged_in=bool(session.get("user")), session_csrf=session.get("csrf"),
        header_csrf=request.headers.get("x-csrf-token"),
        bearer=auth.bearer_token(request.headers.get("authorization")),
    )


def build_app(parts: Parts, rules: Rules, stopping: threading.Event) -> Starlette:
    """The ASGI app; ``stopping`` ends the endless streams when the server stops."""

    def allowed(request: Request) -> auth.Access:
        return auth.access(_credentials(request), token=rules.token,
                           anonymous_writes=rules.anonymous_writes, protect_reads=rules.protect_reads)

    Handler = Callable[[Request], Awaitable[Response]]

    def reads(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            decision = allowed(request)
            if not decision.read:
                return _json({"ok": False, "error": decision.reason}, decision.status)
            return await handler(request)
        return guarded

    # ----- the page, health, metrics ------------------------------------------

    static = resources.files("edgeknn.web").joinpath("static")

    async def index(request: Request) -> Response:
        return FileResponse(str(static.joinpath("index.html")), headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        ok = parts.is_processing()
        return _json({"ok": ok, "camera": parts.status().camera}, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(parts.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    # ----- images ----------------------------------------------------------------

    async def snapshot(request: Request) -> Response:
        jpeg = await run_in_threadpool(parts.frames.full_size)
        if jpeg is None:
            return _json({"ok": False, "error": "no camera frame yet"}, 503)
        return Response(jpeg.data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def stream(request: Request) -> Response:
        async def frames() -> AsyncIterator[bytes]:
            shown = -1
            while not stopping.is_set():
                jpeg = await run_in_threadpool(parts.frames.latest)
                if jpeg is not None and jpeg.frame_index != shown:
                    shown = jpeg.frame_index
                    yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(jpeg.data)}\r\n\r\n").encode() + jpeg.data + b"\r\n"
                await asyncio.sleep(parts.frames.period)

        return StreamingResponse(frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    # ----- reads -------------------------------------------------------------------

    async def classes(request: Request) -> Response:
        return _json({"classes": await run_in_threadpool(parts.store.counts)})

    async def examples(request: Request) -> Response:
        label = request.query_params.get("label")
        limit = _int_param(request, "limit", 60, 1, MAX_EXAMPLES_LISTED)
        if isinstance(limit, Response):
            return limit
        rows = await run_in_threadpool(parts.store.examples, label, limit)
        return _json({"label": label, "examples": [
            {"id": r.id, "label": r.label, "source": r.source, "created": r.created,
             "thumbnail": f"/api/examples/{r.id}/thumbnail.jpg"} for r in rows]})

    async def thumbnail(request: Request) -> Response:
        example_id = request.path_params["example_id"]
        data = await run_in_threadpool(parts.store.thumbnail, example_id)
        if data is None:
            return _json({"ok": False, "error": f"example {example_id} has no thumbnail"}, 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    async def prediction(request: Request) -> Response:
        moment = parts.live.moment
        return _json(moment.as_dict() if moment else None)

    async def stats(request: Request) -> Response:
        return _json((await run_in_threadpool(parts.status)).as_dict())

    async def events(request: Request) -> Response:
        async def feed() -> AsyncIterator[str]:
            seen, counts, classes_due, status_due = -1, None, 0.0, 0.0
            loop = asyncio.get_running_loop()
            yield "retry: 2000\n\n"
            while not stopping.is_set():
                moment = parts.live.moment
                if moment is not None and moment.seq != seen:
                    seen = moment.seq
                    yield _event("prediction", moment.as_dict())
                if loop.time() >= classes_due:
                    classes_due = loop.time() + CLASSES_EVERY
                    now_counts = await run_in_threadpool(parts.store.counts)
                    if now_counts != counts:
                        counts = now_counts
                        yield _event("classes", counts)
                if loop.time() >= status_due:
                    status_due = loop.time() + STATUS_EVERY
                    yield _event("status", (await run_in_threadpool(parts.status)).as_dict())
                await asyncio.sleep(EVENT_INTERVAL)

        return StreamingResponse(feed(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ----- session -------------------------------------------------------------

    async def session(request: Request) -> Response:
        # what this browser may do when it sends the CSRF token it is given here
        creds = replace(_credentials(request), header_csrf=request.session.get("csrf"))
        decision = auth.access(creds, token=rules.token, anonymous_writes=rules.anonymous_writes,
                               protect_reads=rules.protect_reads)
        try:
            has_password = await run_in_threadpool(auth.read_password_hash, rules.password_file) is not None
        except PasswordError:
            has_password = False  # logged when someone tries to log in
        return _json({
            "logged_in": bool(request.session.get("user")), "can_write": decision.write,
            "can_read": decision.read, "csrf": request.session.get("csrf"),
            "login_possible": has_password, "anonymous_writes": rules.anonymous_writes,
            "hold_time": parts.hold_time, "record_rate": parts.record_rate,
        })

    async def login(request: Request) -> Response:
        try:
            body = json.loads(await read_body(request.stream(), request.headers.get("content-length"), 4096))
            password = body["password"] if isinstance(body, dict) else None
        except (ValueError, KeyError, BodyTooLarge):
            password = None
        if not isinstance(password, str):
            return _json({"ok": False, "error": 'send {"password": "..."}'}, 400)
        try:
            stored = await run_in_threadpool(auth.read_password_hash, rules.password_file)
        except PasswordError as exc:
            log.error("%s", exc)
            return _json({"ok": False, "error": str(exc)}, 500)
        if stored is None:
            return _json({"ok": False, "error": "no password is set; on the device run: "
                          "sudo edgeknn web password"}, 403)
        if not await run_in_threadpool(auth.verify_password, password, stored):
            await asyncio.sleep(FAILED_LOGIN_DELAY)
            return _json({"ok": False, "error": "wrong password"}, 401)
        request.session.clear()
        request.session.update({"user": True, "csrf": auth.new_csrf_token()})
        return _json({"ok": True, "csrf": request.session["csrf"]})

    async def logout(request: Request) -> Response:
        request.session.clear()
        return _json({"ok": True})

    # ----- writes --------------------------------------------------------------

    async def command(request: Request) -> Response:
        verb = request.path_params["verb"]
        decision = allowed(request)
        if not decision.write:
            return Response(result_payload(verb, None, False, decision.reason), decision.status,
                            media_type="application/json")
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"))
        except BodyTooLarge as exc:
            return Response(result_payload(verb, None, False, str(exc)), 413, media_type="application/json")
        if request.headers.get("content-type", "").startswith("image/"):
            body = image_request(body, request.query_params)
        status, reply = await run_in_threadpool(run_command, verb, body, parts.target)
        return Response(reply, status, media_type="application/json")

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", reads(metrics)),
        Route("/snapshot.jpg", reads(snapshot)),
        Route("/stream.mjpeg", reads(stream)),
        Route("/api/events", reads(events)),
        Route("/api/session", session),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/classes", reads(classes)),
        Route("/api/examples", reads(examples)),
        Route("/api/examples/{example_id:int}/thumbnail.jpg", reads(thumbnail)),
        Route("/api/prediction", reads(prediction)),
        Route("/api/stats", reads(stats)),
        Route("/api/cmd/{verb}", command, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("edgeknn.web", "static")]), name="static"),
    ]
    middleware = [Middleware(
        SessionMiddleware, secret_key=secrets.token_hex(32), session_cookie="edgeknn_session",
        max_age=SESSION_DAYS * 86400, same_site="strict", https_only=rules.secure_cookie,
    )]
    return Starlette(routes=routes, middleware=middleware)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {to_json(data).decode()}\n\n"


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return _json({"ok": False, "error": f"{name} must be an integer from {low} to {high}"}, 400)
    return int(raw)


