"""Webhook deliveries in Redis. A job's deliveries are a hash beside it (delivery id -> its
record as JSON), made due by the job's own status changes (scripts.UPDATE and START: the
`completed` one in the same write that ends the job) and deleted and expired with it. Every
pending delivery sits in one sorted set scored by when its next attempt is due; a sender
claims one by moving its score a lease ahead (a sender that dies leaves it to another once
the lease runs out), and that score is the fence of what it writes back: a sender whose
lease was taken over writes nothing.

A job's deliveries go one at a time, in the order they were made: a claim also sets the
job's sending mark (`Keys.webhook_sending`, for the same lease), skips the deliveries of jobs
that have one, and takes of a job's due deliveries the oldest; settling removes the mark if
it is still the claim's. So a receiver gets a job's `start` before its `completed` when both
are due (a `start` waiting for its retry does not hold back a due `completed`).

A record: `id` (the webhook-id), `event`, `status` (pending, delivered, failed, or
superseded: a progress delivery still pending when its job finished), `created_ms`,
`next_ms` (its next attempt, null once settled), `attempts` (each `at_ms`, `http_status`,
`error`, `duration_ms`; at most as many as the retry schedule allows), and for start and
completed `job`: the job hash as it was at that event (HGETALL's flat list), its body."""

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

import redis

from .changes import Json
from .ids import ID_PATTERN
from .jobs import JobStore
from .keys import Keys

CLAIM = """
-- KEYS: the due set. ARGV: lease ms, how many, how many due members to look at (at most),
-- then the key names of a job's deliveries and of its sending mark with `{id}` for its id.
-- Claims due deliveries (at most that many), one per job, of jobs none of whose deliveries
-- is being sent: of each such job, the oldest that is due (made first: created_ms, then
-- seq). A claim moves its score a lease ahead and sets the job's sending mark to its member
-- for the lease; the others stay due. Returns {now ms, members...}.
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease, wanted, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local function key(template, job) return (string.gsub(template, '{id}', job)) end

-- Of a job's due deliveries, the one made first (`found` if it is the only one due).
local function oldest_due(job, found)
  local records, due = key(ARGV[4], job), {}
  for _, id in ipairs(redis.call('HKEYS', records)) do
    local score = redis.call('ZSCORE', KEYS[1], job .. ' ' .. id)
    if score and tonumber(score) <= now then due[#due + 1] = id end
  end
  if #due < 2 then return found end
  local first, first_order
  for _, id in ipairs(due) do
    local record = cjson.decode(redis.call('HGET', records, id))
    local order = {tonumber(record.created_ms) or 0, tonumber(record.seq) or 0}
    if not first or order[1] < first_order[1]
      or (order[1] == first_order[1] and order[2] < first_order[2]) then
      first, first_order = id, order
    end
  end
  return job .. ' ' .. first
end

local claimed, seen, offset = {}, {}, 0
while #claimed < wanted and offset < window do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', offset, 100)
  if #due == 0 then break end
  for _, member in ipairs(due) do
    local job = string.match(member, '^(%S+) ')
    if job and not seen[job] and #claimed < wanted then
      seen[job] = true  -- sending, or its oldest due delivery claimed: done with it
      local sending = key(ARGV[5], job)
      if redis.call('EXISTS', sending) == 0 then
        local chosen = oldest_due(job, member)
        redis.call('SET', sending, chosen, 'PX', lease, 'NX')
        claimed[#claimed + 1] = chosen
      end
    end
  end
  offset = offset + #due
end
-- scores moved last: the pages above were read from the due set as it was
for _, member in ipairs(claimed) do redis.call('ZADD', KEYS[1], now + lease, member) end
return {now, unpack(claimed)}
"""

SETTLE = """
-- KEYS: the due set, the job's deliveries, its sending mark. ARGV: member, fence (its score
-- when claimed), delivery id, its record ('' = drop it from the due set only), the next
-- attempt's time in ms ('' = settled). Written only while the claim holds and the record is
-- still there (a deleted or expired job is not brought back); the sending mark goes only
-- if it is still this claim's (a stale claimer's settle frees no one else's). Returns 1 if
-- written.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
if ARGV[4] == '' or redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if ARGV[5] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
end
return 1
"""

CLAIM_WINDOW = 1_000
"""Due deliveries a claim looks at, at most, for one of a job not being sent."""


class Claim(NamedTuple):
    """A due delivery a sender holds until `fence` (ms, Redis's clock)."""

    job_id: str
    delivery_id: str
    fence: int
    now_ms: int  # Redis's clock at the claim

    @property
    def member(self) -> str:
        return f"{self.job_id} {self.delivery_id}"


class Due(NamedTuple):
    """A claimed delivery with what sending it needs."""

    record: Json
    job: Json  # the job resource: at the event (start, completed) or now (progress)
    tenant: str  # whose job it is
    current_status: str  # the job's status now


class WebhookDeliveries:
    def __init__(self, connection: redis.Redis, prefix: str = "gradserve") -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self._claim = connection.register_script(CLAIM)
        self._settle = connection.register_script(SETTLE)

    def claim(self, lease_ms: int, count: int = 1) -> list[Claim]:
        """Due deliveries of jobs not being sent, one per job, the oldest due of each (at
        most `count`), held for `lease_ms`."""
        templates = [self.keys.webhook_deliveries("{id}"), self.keys.webhook_sending("{id}")]
        args = [lease_ms, count, CLAIM_WINDOW, *templates]
        now, *members = self._claim(keys=[self.keys.webhooks_due()], args=args)
        claims = []
        for member in members:
            job_id, _, delivery_id = member.decode().partition(" ")
            claims.append(Claim(job_id, delivery_id, int(now) + lease_ms, int(now)))
        return claims

    def load(self, claim: Claim) -> Due | None:
        """The claimed delivery's record and job (None: the job or the record is gone)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.webhook_deliveries(claim.job_id), claim.delivery_id)
            pipe.hgetall(self.keys.job(claim.job_id))
            text, current = pipe.execute()
        if text is None or not current:
            return None
        record = json.loads(text)
        if not isinstance(record.get("attempts"), list):  # Lua's cjson writes {} for []
            record["attempts"] = []
        snapshot = record.get("job")
        raw = current
        if isinstance(snapshot, list) and snapshot:
            pairs = zip(snapshot[::2], snapshot[1::2], strict=True)
            raw = {name.encode(): value.encode() for name, value in pairs}
        tenant = current.get(b"tenant", b"").decode()
        job = JobStore._decode_job(raw, tenant)
        if job is None:
            return None
        return Due(record, job, tenant, current[b"status"].decode())

    def settle(self, claim: Claim, record: Json | None, next_ms: int | None = None) -> bool:
        """Write the delivery's record (None: drop the claim; the record is gone) and its
        next attempt's time (None: no more attempts), if the claim still holds."""
        args = [
            claim.member,
            claim.fence,
            claim.delivery_id,
            "" if record is None else json.dumps(record, separators=(",", ":")),
            "" if next_ms is None else next_ms,
        ]
        keys = [
            self.keys.webhooks_due(),
            self.keys.webhook_deliveries(claim.job_id),
            self.keys.webhook_sending(claim.job_id),
        ]
        return bool(self._settle(keys=keys, args=args))

    def of_job(self, job_id: str, *, tenant: str) -> list[Json] | None:
        """A job's deliveries, oldest first, as the API shows them (None: no job of
        `tenant`'s)."""
        if not ID_PATTERN.fullmatch(job_id):
            return None
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.keys.job(job_id), "tenant")
            pipe.hvals(self.keys.webhook_deliveries(job_id))
            owner, texts = pipe.execute()
        if owner is None or owner.decode() != tenant:
            return None
        records = sorted(
            (json.loads(t) for t in texts), key=lambda r: (r["created_ms"], r.get("seq", 0))
        )
        return [shown(record) for record in records]


def rfc3339(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shown(record: Json) -> Json:
    """A record as GET /v1/jobs/{id}/webhooks shows it."""
    attempts: Any = record.get("attempts")
    pending = record["status"] == "pending"
    return {
        "id": record["id"],
        "event": record["event"],
        "status": record["status"],
        "created_at": rfc3339(record["created_ms"]),
        "next_attempt_at": rfc3339(record.get("next_ms")) if pending else None,
        "attempts": [
            {
                "at": rfc3339(a["at_ms"]),
                "http_status": a.get("http_status"),
                "error": a.get("error"),
                "duration_ms": a["duration_ms"],
            }
            for a in (attempts if isinstance(attempts, list) else [])
        ],
    }
