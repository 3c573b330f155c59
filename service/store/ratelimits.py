"""The rate limiter's counts: moving windows in Redis, every budget a request spends counted
and read in one Lua call (one round trip per request, however many budgets apply, sent
with other requests' calls: store/batching.py).

A window is a list of the times its requests were counted, newest first, holding only
those within the period (older ones are dropped as the next request comes) and expiring
with it. A request is counted only if every budget it spends has room: a refused request
spends nothing. The answer gives, for each budget, how many requests its window holds and
when the oldest of them was made (what `RateLimit-Remaining` and `RateLimit-Reset` say),
and, when asked, the hash the request is about (a polled job), read in the same round trip
(by HGETALL beside the script: a hash handed through Lua costs Redis several times more).
A request that writes little (a small graph evaluated in the request) hands its writes to
the same call, to run only if it is counted: one round trip where it took two."""

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
from redis.client import Pipeline

from .batching import Batcher, execute_with
from .keys import Keys

SPEND = """
local now = tonumber(ARGV[1])
local budgets = #KEYS
local breached = 0
local counted = {}
for i = 1, budgets do
    local size, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    -- what has left the window goes (the oldest are at the tail): the list holds only the
    -- window, so each request costs a few commands, however large the budget
    while true do
        local last = redis.call('lindex', KEYS[i], -1)
        if not last or tonumber(last) > now - period then
            break
        end
        redis.call('rpop', KEYS[i])
    end
    counted[i] = redis.call('llen', KEYS[i])
    if breached == 0 and counted[i] >= size then
        breached = i
    end
end
if breached == 0 then
    for i = 1, budgets do
        redis.call('lpush', KEYS[i], ARGV[1])
        redis.call('expire', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1])))
        counted[i] = counted[i] + 1
    end
    -- counted: the request's writes, after the budgets' arguments (each command's length,
    -- then its words), run in the same call; a refused request writes nothing
    local at = 2 * budgets + 2
    while at <= #ARGV do
        local length = tonumber(ARGV[at])
        redis.call(unpack(ARGV, at + 1, at + length))
        at = at + length + 1
    end
end
local answer = {breached}
for i = 1, budgets do
    answer[#answer + 1] = counted[i]
    answer[#answer + 1] = redis.call('lindex', KEYS[i], -1) or ARGV[1]
end
return answer
"""


class Budget(NamedTuple):
    """`size` requests per `period` seconds; `name` tells its window from others."""

    name: str
    size: int
    period: float


class Window(NamedTuple):
    counted: int  # requests in the window now
    oldest: float  # when the oldest of them was made (Unix time): it leaves at + period


class RateCounts:
    def __init__(self, connection: redis.Redis, prefix: str = "gradserve") -> None:
        self.keys = Keys(prefix)
        self._spend = connection.register_script(SPEND)
        self.batcher = Batcher(connection)  # every request counts: sent with the others

    def spend(
        self,
        caller: str,
        budgets: Sequence[Budget],
        read: str | None = None,
        now: float | None = None,
        writes: Sequence[Sequence[Any]] = (),
    ) -> tuple[int | None, list[Window], dict[bytes, bytes] | None]:
        """Count one request of `caller` against `budgets` if each has room: (the index of
        the first budget without room, or None when counted; each budget's window; when
        counted, the hash at key `read`, read in the same round trip, so the record the
        request is about costs no round trip of its own; else None). `writes` (Redis
        commands, each a sequence of words) run in the same call if it is counted."""
        now = time.time() if now is None else now
        keys = [self.keys.rate_limit(caller, budget.name) for budget in budgets]
        args: list[Any] = [repr(now)]
        for budget in budgets:
            args += [budget.size, repr(budget.period)]
        for command in writes:
            args += [len(command), *command]

        def commands(pipe: Pipeline) -> None:
            if keys or writes:
                pipe.evalsha(self._spend.sha, len(keys), *keys, *args)
            if read:
                pipe.hgetall(read)

        replies = execute_with(self.batcher, self._spend, commands)
        answer = replies[0] if keys or writes else [0]
        breached = int(answer[0])
        windows = [Window(int(answer[i]), float(answer[i + 1])) for i in range(1, len(answer), 2)]
        found = replies[-1] if read and not breached else None
        return (breached - 1 if breached else None), windows, found
