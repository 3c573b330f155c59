"""Small commands of concurrent requests sent to Redis together (auto-pipelining).

Under gevent one API process has many requests waiting on Redis at once, and each round
trip of its own costs a write and a read on both sides of the socket and a wake-up of the
loop: more CPU than the commands themselves (docs/BENCHMARKS.md). A Batcher sends what its
callers hand it while its previous batch is in flight as one pipeline, on one connection,
and gives each caller its own replies. Nothing else changes: there is no MULTI, so each
command (a script as a whole) is atomic on its own as before, and a request alone waits for
nobody: its batch is sent as soon as the loop runs. Outside gevent (Flask's test client, the
workers) each call is sent at once, alone.

For small commands only: a batch waits for its slowest part."""

from collections.abc import Callable, Sequence
from typing import Any

import gevent
import redis
from gevent import monkey
from gevent.event import AsyncResult
from redis.client import Pipeline
from redis.commands.core import Script

Commands = Callable[[Pipeline], object]
"""Adds one caller's commands to a pipeline."""


class Batcher:
    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.waiting: list[tuple[Commands, AsyncResult]] = []
        self.sending = False

    def execute(self, commands: Commands) -> list[Any]:
        """The replies to what `commands` adds, in order; the first command's error that
        Redis answered is raised, as a connection's failure is."""
        if not monkey.is_module_patched("socket"):
            (answer,) = self.send([commands])
            if isinstance(answer, Exception):
                raise answer
            return answer
        waiter = AsyncResult()
        self.waiting.append((commands, waiter))
        if not self.sending:
            self.sending = True
            gevent.spawn(self.send_waiting)
        return waiter.get()

    def send_waiting(self) -> None:
        """Send what is waiting, batch after batch, until nothing is (one greenlet at a time)."""
        batch: list[tuple[Commands, AsyncResult]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    answers = self.send([commands for commands, _ in batch])
                except Exception as error:  # the connection failed: every caller hears it
                    answers = [error] * len(batch)
                for (_, waiter), answer in zip(batch, answers, strict=True):
                    if isinstance(answer, Exception):
                        waiter.set_exception(answer)
                    else:
                        waiter.set(answer)
                batch = []
        except BaseException as error:  # killed (the worker stops): nobody is left waiting
            for _, waiter in batch + self.waiting:
                waiter.set_exception(redis.ConnectionError(f"not sent: {error!r}"))
            self.waiting = []
            raise
        finally:
            self.sending = False

    def send(self, batch: Sequence[Commands]) -> list[list[Any] | Exception]:
        """One pipeline of every caller's commands: each caller's replies, or its first
        error (one caller's command failing fails no other's)."""
        with self.connection.pipeline(transaction=False) as pipe:
            spans = []
            for commands in batch:
                start = len(pipe.command_stack)
                commands(pipe)
                spans.append((start, len(pipe.command_stack)))
            replies = pipe.execute(raise_on_error=False)
        answers: list[list[Any] | Exception] = []
        for start, end in spans:
            mine = replies[start:end]
            error = next((reply for reply in mine if isinstance(reply, Exception)), None)
            answers.append(error or mine)
        return answers


def execute_with(batcher: Batcher, script: Script, commands: Commands) -> list[Any]:
    """batcher.execute(commands), where `commands` call `script` by its digest (a pipeline
    would ask Redis for its scripts each time), loaded again if Redis lost it (restarted:
    the call that found it missing ran nothing)."""
    try:
        return batcher.execute(commands)
    except redis.exceptions.NoScriptError:
        script.registered_client.script_load(script.script)
        return batcher.execute(commands)


def run_script(batcher: Batcher, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """`script`'s reply, its call sent with others."""
    call = lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args)  # noqa: E731
    (reply,) = execute_with(batcher, script, call)
    return reply
