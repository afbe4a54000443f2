"""The JSON API's writes: the MQTT verbs over HTTP, with the same parser and dispatcher.

``POST /api/cmd/<verb>`` takes the body an MQTT client would publish on
``<base>/cmd/<verb>`` and answers with the same reply JSON; the HTTP status
says what kind of refusal it was.  ``add`` also takes a raw image body
(``Content-Type: image/*``) with ``label`` (and ``target``) as query
parameters: it is turned into the MQTT form and parsed by the same code, so
an upload is validated exactly as an MQTT ``image`` field is.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping

from edgeknn.errors import CameraError, CommandError, EdgeKnnError, StoreError
from edgeknn.mqtt.commands import MAX_PAYLOAD_BYTES, Answer, CommandTarget, answer

MAX_UPLOAD_BYTES = MAX_PAYLOAD_BYTES  # the largest body accepted, JSON or image
UPLOAD_FIELDS = ("label", "target", "id")  # query parameters that go with an image body


class BodyTooLarge(CommandError):
    """The request body is over :data:`MAX_UPLOAD_BYTES`."""


def http_status(error: Exception | None) -> int:
    """The HTTP status of a command's outcome."""
    if error is None:
        return 200
    if isinstance(error, BodyTooLarge):
        return 413
    if isinstance(error, LookupError):  # UnknownLabel, UnknownExample
        return 404
    if isinstance(error, CameraError):
        return 503  # no frame to teach from: try again when the camera works
    if isinstance(error, StoreError):
        return 409
    if isinstance(error, EdgeKnnError):  # CommandError, LabelError, ImageError
        return 400
    return 500


async def read_body(chunks: AsyncIterator[bytes], declared: str | None,
                    limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` (before reading it all)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {int(declared)} bytes; at most {limit} bytes ({limit // 2**20} MiB)")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes ({limit // 2**20} MiB)")
        parts.append(chunk)
    return b"".join(parts)


def image_request(image: bytes, query: Mapping[str, str]) -> bytes:
    """An uploaded image as the MQTT ``add`` payload, so one parser validates both.

    Query parameters other than :data:`UPLOAD_FIELDS` are passed on too, so that
    the parser names them as unknown fields instead of ignoring them."""
    body: dict[str, object] = dict(query)
    if "id" in body and str(body["id"]).lstrip("-").isdigit():
        body["id"] = int(str(body["id"]))
    body["image"] = base64.b64encode(image).decode("ascii")
    return json.dumps(body).encode()


def run_command(verb: str, payload: bytes, target: CommandTarget) -> tuple[int, bytes]:
    """Carry out one request: (HTTP status, the MQTT reply JSON).  Never raises."""
    result: Answer = answer(verb, payload, target, max_bytes=4 * MAX_UPLOAD_BYTES)
    return http_status(result.error), result.payload
