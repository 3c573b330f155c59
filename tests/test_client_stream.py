"""jobs.stream's reconnects, against a tiny scripted SSE server written here (the real API
cannot be made to drop a connection on cue): a connection cut mid-chunk and one that ends
before the terminal status are both resumed with Last-Event-ID, and every step is yielded
once even when the server repeats some. The real events endpoint is followed end to end in
test_client.py and test_cli.py."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gradserve_client import APIConnectionError, Client
from gradserve_client.sse import parse


def event(name, data, event_id=None):
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def progress(steps):
    return {"step": steps, "loss": [1.0 / (s + 1) for s in steps], "accuracy": [0.5] * len(steps)}


def job(status):
    return {"id": "j", "status": status, "progress": {"step": 0, "steps": 7}}


class Script(BaseHTTPRequestHandler):
    """Connection 1: chunked, cut in the middle of a chunk after steps 0..4. Connection 2:
    HTTP/1.0, ends (cleanly) after steps 3..5 without the terminal status. Connection 3:
    steps 6, then `succeeded`."""

    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Script.seen.append(dict(self.headers))
        number = len(Script.seen)
        if number == 1:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = (
                b": keep-alive\n\n"
                + event("status", job("running"))
                + event("progress", progress([0, 1, 2]), 2)
                + event("progress", progress([3, 4]), 4)
            )
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            self.wfile.write(b"400\r\nid: 9\nevent: prog")  # a chunk cut short
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.protocol_version = "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if number == 2:  # resumes with an overlap: steps 3 and 4 again
            self.wfile.write(event("progress", progress([3, 4, 5]), 5))
        else:
            self.wfile.write(event("progress", progress([6]), 6))
            self.wfile.write(event("status", job("succeeded")))
        self.close_connection = True


@pytest.fixture
def scripted():
    Script.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_dropped_stream_resumes_after_the_last_step_and_yields_each_step_once(scripted):
    with Client(scripted, "k") as gs:
        events = list(gs.jobs.stream("j"))
    steps = [s for e in events if e.event == "progress" for s in e.data["step"]]
    assert steps == [0, 1, 2, 3, 4, 5, 6]
    assert [e.data["status"] for e in events if e.event == "status"] == ["running", "succeeded"]
    assert events[-1].event == "status"
    resumed = [headers.get("Last-Event-ID") for headers in Script.seen]
    assert resumed == [None, "4", "5"]
    assert all(h["Accept"] == "text/event-stream" for h in Script.seen)
    assert all(h["Authorization"] == "Bearer k" for h in Script.seen)


def test_a_stream_that_keeps_dropping_gives_up(scripted):
    with Client(scripted, "k") as gs, pytest.raises(APIConnectionError, match="dropped"):
        for _ in gs.jobs.stream("j", reconnects=0):
            pass


def test_the_parser_reads_multiline_data_comments_crlf_and_drops_a_cut_event():
    chunks = [
        b": hi\r\nevent: a\r\nda",
        b"ta: 1\r\ndata: 2\r\n\r\nid: 7\n",
        b"data: x\n\ndata: cut",
    ]
    events = list(parse(chunks))
    assert [(e.event, e.data, e.id) for e in events] == [("a", "1\n2", None), ("message", "x", "7")]
