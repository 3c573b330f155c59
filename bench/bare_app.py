"""The yardstick of bench_throughput: a bare Flask app answering every request with a
constant, served under the API's own gunicorn config. What the API adds is what it costs
beyond this."""

from flask import Flask

app = Flask(__name__)
BODY = '{"id":"0123456789abcdef","status":"succeeded"}'


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def constant(path: str) -> tuple[str, int, dict[str, str]]:
    return BODY, 200, {"Content-Type": "application/json"}
