"""gzip for large responses (a history of 10^5 steps, a graph result, a page of jobs) when
the client accepts it: `Accept-Encoding: gzip`, not refused with `q=0`. Responses under
GZIP_MIN_BYTES are sent as they are; streamed ones (Server-Sent Events above all, whose
events must reach the client as they happen) never pass through here."""

import gzip

from flask import Flask, Response, current_app, request
from isal import igzip

from .concurrency import offload

NEVER = frozenset({"text/event-stream"})
"""Types sent as they are, whatever their size."""


def compress(response: Response) -> Response:
    if (
        response.is_streamed
        or response.direct_passthrough
        or response.mimetype in NEVER
        or "Content-Encoding" in response.headers
        or response.status_code < 200
        or response.status_code in (204, 206, 304)
    ):
        return response
    config = current_app.config
    size = response.calculate_content_length() or 0
    if size < config["GZIP_MIN_BYTES"]:
        return response
    response.vary.add("Accept-Encoding")  # a cache must not serve this to other clients
    if not request.accept_encodings["gzip"]:
        return response
    data, level = response.get_data(), config["GZIP_LEVEL"]
    large = size > config["HEAVY_BODY_BYTES"]  # off the event loop, as heavy requests are
    response.set_data(offload(gzipped, data, level) if large else gzipped(data, level))
    response.headers["Content-Encoding"] = "gzip"
    return response


def gzipped(data: bytes, level: int) -> bytes:
    """gzip with no timestamp (the same body, the same bytes). Level 1, the default, is
    written by ISA-L's igzip: the same format, as small, in a quarter of zlib's time
    (docs/BENCHMARKS.md); any other level by zlib, as configured."""
    if level == 1:
        return igzip.compress(data, 1, mtime=0)
    return gzip.compress(data, level, mtime=0)


def register(app: Flask) -> None:
    app.after_request(compress)
