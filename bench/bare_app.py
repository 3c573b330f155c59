"""The yardstick of bench_throughput: a bare Flask app answering every request with a
constant, served under the API's own gunicorn config. What the API adds is what it costs
beyond this.

`/redis` answers the same constant after one Redis round trip (a script reading a hash, on
a client made as the API makes its own, batched with other requests' as the API's are:
store/batching.py): the floor of any request that must read or count something shared, as
every authenticated, rate-limited /v1 request does."""

import os

from flask import Flask

from service.store.batching import Batcher, run_script
from service.store.queue import connect

app = Flask(__name__)
BODY = '{"id":"0123456789abcdef","status":"succeeded"}'
_redis = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), 0.75)
_read = _redis.register_script("return redis.call('hgetall', KEYS[1])")
_batcher = Batcher(_redis)


@app.route("/redis", methods=["GET", "POST"])
def one_round_trip() -> tuple[str, int, dict[str, str]]:
    run_script(_batcher, _read, ["bench:bare"], [])
    return BODY, 200, {"Content-Type": "application/json"}


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def constant(path: str) -> tuple[str, int, dict[str, str]]:
    return BODY, 200, {"Content-Type": "application/json"}
