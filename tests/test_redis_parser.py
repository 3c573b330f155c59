"""service/store/parser.py: before lending a pooled connection, redis-py asks whether it has
anything unread; our parser answers with the operating system's poll (gevent's yields to the
loop for nothing). Its answers must be redis-py's own: nothing waiting, a reply waiting, a
connection the server closed. On the real Redis, in this process and in one gevent has
patched, as the API's workers are."""

import socket
import subprocess
import sys
import textwrap

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
        from tests.test_redis_parser import check
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
