"""A plain HTTP client for the web tests (urllib with a cookie jar), and the daemon's web config."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from edgeknn.web import auth

PASSWORD = "teach me please"
TOKEN = "api-token-for-tests"


def web_section(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The ``web`` config of a test daemon: loopback, any free port (``daemon.web.url``
    says which; a port picked beforehand could be taken by an outgoing connection), a
    password set."""
    password_file = tmp_path / "web-password"
    auth.write_password_hash(password_file, auth.hash_password(PASSWORD))
    return {"enabled": True, "host": "127.0.0.1", "port": 0, "password_file": str(password_file),
            "token": TOKEN, "stream_fps": 10.0, **overrides}


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """One browser-like client: keeps its cookies; ``csrf`` is sent once logged in."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.csrf: str | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 15) -> Reply:
        headers = dict(headers or {})
        if self.csrf and method == "POST":
            headers.setdefault("X-CSRF-Token", self.csrf)
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        headers = kw.pop("headers", None) or {"Content-Type": "application/json"}
        return self.request("POST", path, data, headers, **kw)

    def login(self, password: str = PASSWORD) -> Reply:
        reply = self.post("/api/login", {"password": password})
        if reply.status == 200:
            self.csrf = reply.json()["csrf"]
        return reply
