"""The device's own web page and HTTP API, beside the pipeline.

    auth.py     the password hash, the token, who may write (pure but the file I/O)
    frames.py   JPEG frames for the live view: only while watched, newest frame, bounded rate
    live.py     the newest prediction and detections (a processing-loop hook), the status
    metrics.py  /metrics through prometheus_client, read at scrape time
    api.py      the MQTT verbs over HTTP: the same parser and dispatcher as MQTT
    app.py      the Starlette app: routes, sessions, streams
    server.py   uvicorn on its own thread
    site.py     :class:`~edgeknn.web.site.WebSite`: all of the above, from the ``[web]`` config
    static/     the page: HTML, CSS and JS served as they are (no build step, no CDN)

This module itself stays light (no server library is imported by importing it),
so that the Home Assistant link can ask :func:`page_url` without the server.
:class:`~edgeknn.web.site.WebSite` puts them together from the ``[web]`` config; the daemon adds
its ``live.on_frame`` to the processing loop's hooks, starts it after the
pipeline and stops it first.
"""

from __future__ import annotations

from edgeknn.config import WebConfig

ANY_ADDRESS = ("0.0.0.0", "::", "")


def page_url(config: WebConfig, hostname: str) -> str | None:
    """Where a browser on the network finds the page; None when the page is off or its
    port is only chosen at start (0)."""
    if not config.enabled or config.port == 0:
        return None
    host = hostname if config.host in ANY_ADDRESS else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}/"
