"""A real Home Assistant core for tests: its venv, starting it, onboarding, its APIs.

Home Assistant 2025.4 is the newest that installs on Python 3.13.0 (pyenv's
here).  Its venv is built once, from Home Assistant's own pinned
``package_constraints.txt`` (read from the wheel) plus ``pycares<5`` (aiodns
3.2 breaks on pycares 5), under ``$EDGEKNN_TEST_CACHE`` (default
``~/.cache/edgeknn-test``) in ``homeassistant-<version>/``: built in a
temporary directory and renamed, so a half-built venv is never used.  It runs
with ``--skip-pip``: the integrations it loads (frontend, MQTT, ...) have
their requirements installed up front, so a test never touches the network.

Never imported by the service.  Talks HTTP with the standard library and the
websocket API with ``websockets`` (a test dependency).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from edgeknn.errors import EdgeKnnError
from edgeknn.tools.devbroker import free_port

VERSION = "2025.4.4"
PYTHON = "3.13"
# What the integrations it loads need at start (bootstrap's defaults, onboarding, MQTT),
# besides homeassistant's own requirements; versions come from its constraints.
EXTRA_REQUIREMENTS = ["home-assistant-frontend", "paho-mqtt", "psutil-home-assistant", "cronsim",
                      "securetar", "Pillow", "ifaddr", "pycares<5"]
COMPLETE = ".edgeknn-complete"
USER, PASSWORD = "edgeknn", "edgeknn-test-password"


class HassUnavailable(EdgeKnnError):
    """Home Assistant cannot be installed or started on this machine (the reason says why)."""


def cache_root() -> Path:
    return Path(os.environ.get("EDGEKNN_TEST_CACHE") or Path.home() / ".cache" / "edgeknn-test")


def find_python() -> str | None:
    """A working Python 3.13: pyenv's, else one on PATH (a pyenv shim may exist and fail)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = sorted(glob.glob(f"{root}/versions/{PYTHON}.*/bin/python{PYTHON}"), reverse=True)
    candidates += [found] if (found := shutil.which(f"python{PYTHON}")) else []
    for candidate in candidates:
        check = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)
        if check.returncode == 0 and check.stdout.strip() == f"({PYTHON.replace('.', ', ')})":
            return candidate
    return None


def venv_python(root: Path | None = None) -> Path:
    """The venv's interpreter, building the venv first if it is not complete."""
    target = (root or cache_root()) / f"homeassistant-{VERSION}"
    if (target / COMPLETE).exists():
        return target / "bin" / "python"
    python = find_python()
    if python is None:
        raise HassUnavailable(f"Home Assistant {VERSION} needs Python {PYTHON}; none on PATH or in pyenv")
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _run([python, "-m", "venv", str(build)], "making the venv")
        pip = [str(build / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
        wheels = build / "wheel"
        _run([*pip, "download", "--no-deps", f"homeassistant=={VERSION}", "-d", str(wheels)],
             "downloading the homeassistant wheel")
        [wheel] = wheels.glob("homeassistant-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            constraints = archive.read("homeassistant/package_constraints.txt").decode()
        (build / "constraints.txt").write_text(constraints + "pycares<5\n")
        _run([*pip, "install", "-c", str(build / "constraints.txt"), str(wheel), *EXTRA_REQUIREMENTS],
             "installing homeassistant")
        shutil.rmtree(wheels)
        (build / COMPLETE).write_text(f"homeassistant {VERSION}\n")
        build.rename(target)  # the venv's scripts name the temporary path; we run bin/python -m
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return target / "bin" / "python"


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise HassUnavailable(f"{what} failed: " + " | ".join(tail))


class HomeAssistant:
    """One Home Assistant on a free loopback port with a fresh config directory."""

    def __init__(self, python: Path, config_dir: Path) -> None:
        self.python = python
        self.config_dir = config_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # ----- process ---------------------------------------------------------------

    def start(self, timeout: float = 120.0, extra_config: str = "") -> float:
        """Start it and wait for its HTTP API; returns the seconds that took.
        ``extra_config`` is appended to configuration.yaml."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\nlogger:\n  default: warning\n"
            + extra_config
        )
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "homeassistant", "--config", str(self.config_dir), "--skip-pip",
             "--log-file", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise HassUnavailable(f"Home Assistant exited at start; see {self.log_path}")
            try:
                self.request("GET", "/api/onboarding", auth=False)
                return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise HassUnavailable(f"Home Assistant did not answer within {timeout:.0f} s; see {self.log_path}")

    @property
    def log_path(self) -> Path:
        return self.config_dir / "home-assistant.log"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # ----- HTTP --------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                form: bool = False, auth: bool = True) -> Any:
        headers, data = {}, None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def request_bytes(self, path: str) -> bytes:
        """GET a binary resource (an image) with the token."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as response:
            return bytes(response.read())

    def onboard(self) -> None:
        """Create the owner through the onboarding API and log in (auth code -> token)."""
        client_id = self.url + "/"
        user = self.request("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "edgeknn test", "username": USER, "password": PASSWORD,
            "language": "en"}, auth=False)
        token = self.request("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id},
            form=True, auth=False)
        self.token = token["access_token"]

    def add_mqtt(self, host: str, port: int) -> dict[str, Any]:
        """Add the MQTT integration through the config-flow API; returns the created entry."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("step_id") != "broker":
            raise HassUnavailable(f"unexpected MQTT config flow step: {flow}")
        result = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                              {"broker": host, "port": port})
        if result.get("type") != "create_entry":
            raise HassUnavailable(f"the MQTT config flow did not create an entry: {result}")
        return result["result"]

    def call_service(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    # ----- websocket -----------------------------------------------------------------

    def ws(self, *messages: dict[str, Any]) -> list[Any]:
        """Send websocket API commands; their results, in order."""
        from websockets.sync.client import connect

        results = []
        with connect(self.url.replace("http", "ws", 1) + "/api/websocket", open_timeout=30) as ws:
            json.loads(ws.recv())
            ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            if json.loads(ws.recv())["type"] != "auth_ok":
                raise HassUnavailable("the websocket API refused the token")
            for n, message in enumerate(messages, 1):
                ws.send(json.dumps({"id": n, **message}))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == n and reply.get("type") == "result":
                        break
                if not reply["success"]:
                    raise EdgeKnnError(f"websocket {message['type']} failed: {reply.get('error')}")
                results.append(reply["result"])
        return results

    def mqtt_entities(self) -> list[dict[str, Any]]:
        """The entity registry's MQTT entries."""
        [entries] = self.ws({"type": "config/entity_registry/list"})
        return [e for e in entries if e["platform"] == "mqtt"]

    def devices(self) -> list[dict[str, Any]]:
        [devices] = self.ws({"type": "config/device_registry/list"})
        return devices
