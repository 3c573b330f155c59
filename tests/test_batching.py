"""Commands of concurrent requests sent to Redis together (service/store/batching.py).

Under gevent, as the API's workers run, callers waiting at once share a pipeline, and each
gets its own replies or its own error; a failed connection fails every caller of its batch
and leaves the batcher working. Outside gevent each call goes alone. On the real Redis."""

import subprocess
import sys
import textwrap

import pytest
import redis

from service.stack.redis_server import free_port
from service.store.batching import Batcher, run_script
from service.store.queue import connect


class Counted(Batcher):
    """A Batcher that keeps the size of each batch it sent."""

    def __init__(self, connection: redis.Redis) -> None:
        super().__init__(connection)
        self.sizes: list[int] = []

    def send(self, batch):
        self.sizes.append(len(batch))
        return super().send(batch)


def incr_and_get(batcher: Batcher, key: str) -> list:
    return batcher.execute(lambda pipe: (pipe.incr(key), pipe.get(key)))


def under_gevent(url: str) -> None:
    """The checks, in a process gevent has patched (run by the test below)."""
    import gevent

    client = connect(url, 2.0)
    client.set("batch:text", "not a number")
    batcher = Counted(client)
    callers = [gevent.spawn(incr_and_get, batcher, f"batch:{i}") for i in range(50)]
    failing = gevent.spawn(incr_and_get, batcher, "batch:text")
    gevent.joinall([*callers, failing])
    assert [caller.get() for caller in callers] == [[1, str(1).encode()]] * 50
    assert isinstance(failing.exception, redis.ResponseError)  # its own error, nobody else's
    assert sum(batcher.sizes) == 51 and max(batcher.sizes) > 1, batcher.sizes

    script = client.register_script("return KEYS[1] .. ARGV[1]")
    client.script_flush()  # as when Redis restarts: the script is loaded again
    runs = [gevent.spawn(run_script, batcher, script, ["a"], [i]) for i in range(3)]
    gevent.joinall(runs, raise_error=True)
    assert [run.get() for run in runs] == [b"a0", b"a1", b"a2"]

    gone = Batcher(connect(f"redis://127.0.0.1:{free_port()}/0", 0.5))  # nobody listens
    for _ in range(2):  # and after a failed batch, the next one is sent (and fails) too
        tries = [gevent.spawn(incr_and_get, gone, "k") for _ in range(5)]
        gevent.joinall(tries, timeout=10)
        assert all(isinstance(t.exception, redis.ConnectionError) for t in tries), tries


def test_concurrent_callers_share_batches_and_keep_their_own_replies(redis_url):
    script = f"""
        from gevent import monkey
        monkey.patch_all()
        from tests.test_batching import under_gevent
        under_gevent({redis_url!r})
        print("ok")
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_outside_gevent_each_call_goes_alone(redis_client):
    batcher = Counted(redis_client)
    assert incr_and_get(batcher, "batch:alone") == [1, b"1"]
    redis_client.set("batch:text", "x")
    with pytest.raises(redis.ResponseError):
        incr_and_get(batcher, "batch:text")
    assert batcher.sizes == [1, 1]
