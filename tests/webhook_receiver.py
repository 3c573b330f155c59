"""A webhook receiver on loopback for the tests: it answers each POST with the next status of
a script (the last one ever after) and keeps every request it got."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .service_helpers import wait_until


class Receiver:
    def __init__(self, statuses=(204,), location=None):
        self.statuses = list(statuses)
        self.location = location  # sent with a 3xx
        self.requests = []  # (path, headers as a dict with lower-case names, body bytes)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's spelling)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append((self.path, headers, body))
                    status = (
                        receiver.statuses.pop(0)
                        if len(receiver.statuses) > 1
                        else receiver.statuses[0]
                    )
                self.send_response(status)
                if 300 <= status < 400 and receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count, timeout=30.0):
        """The first `count` requests, once they have come."""
        wait_until(lambda: len(self.requests) >= count, timeout=timeout)
        with self.lock:
            return list(self.requests[:count])
