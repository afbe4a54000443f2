"""The web server's life: uvicorn on its own thread with its own event loop.

uvicorn installs no signal handlers off the main thread, so the daemon keeps
its own; :meth:`WebServer.stop` ends the endless streams first, then asks
uvicorn to exit and waits a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn

from edgeknn.errors import WebError
from edgeknn.web.app import Parts, Rules, build_app

log = logging.getLogger(__name__)


class WebServer:
    """Serves ``parts`` on ``host:port`` (port 0: any free port; see :attr:`port`)."""

    def __init__(self, parts: Parts, rules: Rules, *, host: str, port: int) -> None:
        self._stopping = threading.Event()
        self._app = build_app(parts, rules, self._stopping)
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind now (so a port in use is a clear error here), serve on a thread."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise WebError(f"web: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                           "set web.port to a free port, or web.enabled = false") from None
        sock.listen(64)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        # log_config=None: uvicorn's messages go through the service's own logging set-up
        config = uvicorn.Config(self._app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, proxy_headers=True,
                                forwarded_allow_ips="127.0.0.1")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()
        log.info("web page on %s", self.url)

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except Exception:  # a bug in the server must not take the pipeline down
            log.exception("the web server crashed")

    def stop(self, timeout: float = 1.5) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                assert self._server is not None
                self._server.force_exit = True
                self._thread.join(0.5)
                if self._thread.is_alive():
                    log.error("the web server did not stop within %.1f s", timeout)
        if self._socket is not None:
            self._socket.close()
