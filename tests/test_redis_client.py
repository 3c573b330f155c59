"""The service's Redis client (service/store/queue.py `connect`).

Its pool: a command that finds every connection in use waits for one (up to its timeout)
instead of failing at once, as redis-py's own pool does past 100 (400 pollers at once got
68% 503s from the API).

Its parser (service/store/parser.py): before lending a pooled connection, redis-py asks
whether it has anything unread; our parser answers with the operating system's poll
(gevent's yields to the loop for nothing). Its answers must be redis-py's own: nothing
waiting, a reply waiting, a connection the server closed.

On the real Redis, in this process and in one gevent has patched, as the API's workers
are."""

import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis._parsers import _HiredisParser

from service.store.parser import NonYieldingParser
from service.store.queue import connect


def answers(url: str, parser: type) -> list:
    """What can_read says of a connection with nothing waiting, with a reply waiting, and
    once the server has closed it (an exception's type when it raises)."""
    client = redis.Redis.from_url(url, parser_class=parser)
    connection = client.connection_pool.get_connection()
    assert type(connection._parser) is parser
    said = [connection.can_read()]
    connection.send_command("ECHO", "unread")
    connection._sock.recv(1, socket.MSG_PEEK)  # the reply has come
    said.append(connection.can_read())
    connection.read_response()
    killer = redis.Redis.from_url(url)
    connection.send_command("CLIENT", "ID")
    killer.client_kill_filter(_id=connection.read_response())
    connection._sock.recv(1, socket.MSG_PEEK)  # the end of the stream has come
    try:
        said.append(connection.can_read())
    except redis.ConnectionError as error:
        said.append(type(error))
    return said


def check(url: str) -> None:
    ours = answers(url, NonYieldingParser)
    assert ours == answers(url, _HiredisParser)
    assert ours[:2] == [False, True] and ours[2] in (True, redis.ConnectionError)
    client = connect(url, 2.0)  # and the client made as the service makes it
    client.client_kill_filter(_id=client.client_id())
    assert client.ping() is True  # lent again after the server closed it: reconnected


def test_it_answers_as_redis_pys_own_parser(redis_url):
    check(redis_url)


def test_it_answers_the_same_under_gevent_with_many_greenlets_sharing_the_pool(redis_url):
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from service.store.queue import connect
        from tests.test_redis_client import check
        check({redis_url!r})
        client = connect({redis_url!r}, 2.0)
        def one(i):
            client.set(f"parser:{{i}}", i)
            return int(client.get(f"parser:{{i}}"))
        jobs = [gevent.spawn(one, i) for i in range(50)]
        gevent.joinall(jobs, raise_error=True)
        assert [job.value for job in jobs] == list(range(50))
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_command_waits_for_a_connection_when_all_are_in_use(redis_url):
    client = connect(redis_url, 2.0, max_connections=2)
    with ThreadPoolExecutor(3) as pool:
        holding = [pool.submit(client.blpop, ["gradserve:test:never"], 0.5) for _ in range(2)]
        time.sleep(0.1)  # both connections are in BLPOP now
        started = time.monotonic()
        assert pool.submit(client.ping).result() is True  # not "Too many connections"
        waited = time.monotonic() - started
        assert [h.result() for h in holding] == [None, None]
    assert 0.2 < waited < 1.5  # it waited for a BLPOP to give its connection back


def test_a_command_that_waits_longer_than_its_timeout_fails(redis_url):
    client = connect(redis_url, 0.3, max_connections=1)
    held = client.connection_pool.get_connection()  # the one connection, in use
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):  # the API answers it 503, as Redis down
        client.set("k", "v")
    assert 0.25 < time.monotonic() - started < 2.0
    client.connection_pool.release(held)
    assert client.set("k", "v") is True
