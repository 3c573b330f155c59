"""One webhook POST, to an address the SSRF guard checked (service.webhook_targets): the
socket is connected to that address (no second resolution of the name), the Host header and
the TLS server name are the URL's host, redirects are answers like any other (never
followed), and the whole exchange has a deadline."""

import http.client
import socket
import ssl
import threading

from ..webhook_targets import Url

MAX_ERROR_TEXT = 200
"""Characters of an error kept in an attempt's record."""


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            error = exc
    raise error


def post(
    url: Url,
    addresses: list[str],
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
) -> int:
    """POST `body` and return the response's status; OSError or http.client.HTTPException
    when it could not (refused, timed out, reset, TLS failed, not HTTP)."""
    sock = _connect(addresses, url.port, connect_timeout)
    # A receiver that trickles its answer a byte at a time is cut off at the deadline.
    deadline = threading.Timer(read_timeout, _shut, (sock,))
    try:
        if url.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=url.host)
        sock.settimeout(read_timeout)
        deadline.start()
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = kind(url.host, url.port, timeout=read_timeout)  # its Host header
        connection.sock = sock  # already connected: http.client never resolves the name
        connection.request("POST", url.target, body=body, headers=headers)
        response = connection.getresponse()
        status = response.status
        response.close()
        return status
    finally:
        deadline.cancel()
        _shut(sock)  # closed for good, also where a forked work-horse holds a copy
        sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def describe(exc: BaseException) -> str:
    """An attempt's error as its record keeps it."""
    if isinstance(exc, TimeoutError | socket.timeout):
        text = "timed out"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_TEXT]
