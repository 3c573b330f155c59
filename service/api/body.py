"""Request bodies, read within bounds: at most MAX_CONTENT_LENGTH bytes, whether the client
declares a Content-Length or sends the body chunked (413 either way, never a body cut
short and parsed), and each 64 KiB within REQUEST_READ_TIMEOUT (408: a client that stalls
or trickles cannot hold a connection's reader indefinitely)."""

from typing import Any

from flask import Request, current_app
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout
from werkzeug.wsgi import get_content_length

from .concurrency import time_limit

CHUNK = 64 * 1024
"""Bytes read at a time: the unit REQUEST_READ_TIMEOUT applies to."""


class BoundedRequest(Request):
    """Flask's request, its body read by `read_body` (get_data is the one way the API reads
    bodies: webargs and the routes both call it)."""

    _body: bytes | None = None

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> Any:
        body = self._body
        if body is None:
            body = read_body(
                self.environ, self.max_content_length, current_app.config["REQUEST_READ_TIMEOUT"]
            )
            if cache:
                self._body = body
        return body.decode(errors="replace") if as_text else body


def read_body(environ: dict[str, Any], limit: int | None, timeout: float) -> bytes:
    """The body: Content-Length bytes, or a chunked body to its end; over `limit` bytes
    (read at most limit + 1 to know) is 413, each CHUNK slower than `timeout` is 408."""
    length = get_content_length(environ)  # None for a chunked body
    if limit is not None and length is not None and length > limit:
        raise RequestEntityTooLarge()
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # a server that does not end the stream for us: no body (as werkzeug does)
    wanted = length if length is not None else (limit + 1 if limit is not None else None)
    stream, chunks, received = environ["wsgi.input"], [], 0
    while wanted is None or received < wanted:
        size = CHUNK if wanted is None else min(CHUNK, wanted - received)
        late = RequestTimeout(
            f"the request body stopped arriving: no {size} bytes within {timeout} s"
        )
        with time_limit(timeout, late):
            chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    if limit is not None and received > limit:
        raise RequestEntityTooLarge()
    if length is not None and received < length:
        raise BadRequest(f"the body ended after {received} of its {length} bytes (Content-Length)")
    return b"".join(chunks)
