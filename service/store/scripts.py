"""The store's Lua scripts: every change of a job's status, and every write of a running job,
checks the job's state first, in Redis, atomically.

UPDATE, START and DELETE take the same KEYS (`JOB_KEYS`): the job hash, its history list,
its checkpoint, a model, its lease, its stranded mark, the index of all jobs, its inline data,
the index of finished jobs by expiry, the tenant index of each of those, its webhook
deliveries, the due deliveries of every job (store.deliveries), its webhook sending mark,
then one index per status;
and the job id as ARGV[1]. A job's tenant's indexes are named in its hash (below),
so they are not among the KEYS.
Every script reads the job hash first and writes nothing for a job that is not there (a
deleted or expired job is never brought back by a late write of its run).

Hidden fields of the job hash (never in the API's job resource): `attempt` (runs started),
`run` (the token of the current run: the one fence of every write of a run), `ticket` (the
rq job id that may start it), `requeues`, `losses` (runs lost since the latest checkpoint),
`recorded` (history steps stored), `run_from` (the step the current run began at), `rewound`
(stored steps dropped by hand-backs, to be computed again), `trained_seconds`,
`retention_ms` (how long the job is kept once finished), and `cp_*`:
the state the latest checkpoint goes with (history batches, steps, progress, metrics,
seconds), which a job handed back to the queue is rewound to; `tenant` (whose job it is) and
`tenant_jobs` (that tenant's index of its jobs: its per-status indexes are that name plus
`:<status>`, as `Keys.tenant_jobs` spells them, kept in step with the global ones);
`webhook_progress` and `webhook_progress_n` (the job's latest progress delivery, and how many
it had), `webhook_seq` (its deliveries so far: their order).
"""

from typing import NamedTuple

import redis
from redis.commands.core import Script

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_KEYS = (
    "job",
    "history",
    "checkpoint",
    "model",
    "lease",
    "stranded",
    "all",
    "data",
    "expiry",
    "expiry_tenants",
    "webhooks",
    "webhooks_due",
    "webhook_sending",
)
KEPT_PROGRESS_DELIVERIES = 10
"""A job's progress deliveries kept (older ones are dropped as new ones come)."""

_PRELUDE = """
local INDEX = {STATUS_INDEX}

-- Back to the latest checkpoint: the history it covers, the progress and metrics it had.
local function rewind()
  local cp = redis.call('HMGET', KEYS[1], 'cp_batches', 'cp_recorded', 'cp_progress',
    'cp_metrics', 'cp_seconds', 'recorded')
  -- `rewound` counts the stored steps dropped, to be computed again
  redis.call('HINCRBY', KEYS[1], 'rewound', tonumber(cp[6] or '0') - tonumber(cp[2] or '0'))
  if cp[1] and tonumber(cp[1]) > 0 then
    redis.call('LTRIM', KEYS[2], 0, tonumber(cp[1]) - 1)
    redis.call('HSET', KEYS[1], 'recorded', cp[2], 'progress', cp[3], 'metrics', cp[4],
      'trained_seconds', cp[5])
  else
    local progress = cjson.decode(redis.call('HGET', KEYS[1], 'progress'))
    progress['step'] = 0
    redis.call('DEL', KEYS[2], KEYS[3])
    redis.call('HSET', KEYS[1], 'recorded', 0, 'progress', cjson.encode(progress),
      'metrics', '{"loss":null,"accuracy":null}', 'trained_seconds', 0)
  end
end

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- A webhook delivery of `event` is due now, if the job's spec asks for it (store.deliveries
-- reads it). A start or completed delivery keeps the job hash as it is now (its body);
-- a progress delivery is made only when the job's previous one is no longer pending (that
-- one will carry the latest state: coalesced), and is rebuilt from the job when sent.
local function webhook_due(event)
  local spec = cjson.decode(redis.call('HGET', KEYS[1], 'spec') or '{}')
  local webhook = spec.webhook
  if type(webhook) ~= 'table' then return end
  local asked = event == 'completed'
  for _, e in ipairs(webhook.events or {}) do
    if e == event then asked = true end
  end
  if not asked then return end
  local id = 'msg_' .. ARGV[1] .. '_' .. event
  local delivery = {event = event, status = 'pending', attempts = {}}
  if event == 'progress' then
    local current = redis.call('HGET', KEYS[1], 'webhook_progress')
    if current and redis.call('ZSCORE', KEYS[12], ARGV[1] .. ' ' .. current) then return end
    local n = redis.call('HINCRBY', KEYS[1], 'webhook_progress_n', 1)
    id = id .. n
    redis.call('HSET', KEYS[1], 'webhook_progress', id)
    if n > KEPT_PROGRESS then
      redis.call('HDEL', KEYS[11], 'msg_' .. ARGV[1] .. '_progress' .. (n - KEPT_PROGRESS))
    end
  else
    delivery.job = redis.call('HGETALL', KEYS[1])
  end
  local now = now_ms()
  delivery.id, delivery.created_ms, delivery.next_ms = id, now, now
  delivery.seq = redis.call('HINCRBY', KEYS[1], 'webhook_seq', 1)  -- their order, in one ms too
  redis.call('HSET', KEYS[11], id, cjson.encode(delivery))
  redis.call('ZADD', KEYS[12], now, ARGV[1] .. ' ' .. id)
end

-- A new status, with the indexes kept in step; leaving `running` gives up the lease, and
-- going back to `queued` rewinds to the checkpoint; a terminal status makes the webhook's
-- `completed` delivery due.
local function move(to)
  local from = redis.call('HGET', KEYS[1], 'status')
  if from == to then return end
  local score = redis.call('ZSCORE', KEYS[7], ARGV[1])
  redis.call('ZREM', KEYS[INDEX[from]], ARGV[1])
  redis.call('ZADD', KEYS[INDEX[to]], score, ARGV[1])
  local own = redis.call('HGET', KEYS[1], 'tenant_jobs')
  if own then
    redis.call('ZREM', own .. ':' .. from, ARGV[1])
    redis.call('ZADD', own .. ':' .. to, score, ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'status', to)
  if from == 'running' then redis.call('DEL', KEYS[5]) end
  if from == 'running' and to == 'queued' then rewind() end
  if to == 'succeeded' or to == 'failed' or to == 'cancelled' then webhook_due('completed') end
end

-- A finished job, its history, checkpoint, data and model expire RETENTION ms from now (by
-- Redis's clock), and the expiry index says when, for the reaper's sweep of the indexes
-- (its tenant's too: their name is kept beside, as the job hash will be gone by then).
local function expire_finished(fallback)
  local ms = tonumber(redis.call('HGET', KEYS[1], 'retention_ms') or fallback)
  for _, key in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[8], KEYS[11]}) do
    redis.call('PEXPIRE', key, ms)
  end
  -- the sending mark lives a sender's lease: a retention shorter than that shortens it
  local lease = redis.call('PTTL', KEYS[13])
  if lease == -1 or lease > ms then redis.call('PEXPIRE', KEYS[13], ms) end
  redis.call('ZADD', KEYS[9], now_ms() + ms, ARGV[1])
  local own = redis.call('HGET', KEYS[1], 'tenant_jobs')
  if own then redis.call('HSET', KEYS[10], ARGV[1], own) end
end
""".replace(
    "STATUS_INDEX",
    ", ".join(f"{s} = {len(JOB_KEYS) + 1 + i}" for i, s in enumerate(STATUSES)),
).replace("KEPT_PROGRESS", str(KEPT_PROGRESS_DELIVERIES))

UPDATE = (
    _PRELUDE
    + """
-- One guarded change of a job (store.changes.Change). ARGV: 2 the change as JSON:
-- `allowed` statuses, and, each only when given, `tenant` (whose job it must be: another
-- tenant's is answered as no such job), `token` (the run that must still hold
-- the job), `to` (the new status), `first_step` and `steps` (of the history batch, which
-- must start where the stored history ends), `publish` (a channel to tell "cancel" on),
-- `webhook` (a webhook event now due: progress),
-- `set` (job hash fields and their stored text); then JSON texts, stored as they are
-- ('' = none): 3 the history batch, 4 a checkpoint, 5 a model (stored with the job's tenant);
-- 6 the retention (ms) of a job that has none recorded; 7 the changes channel ('' = none),
-- told `job:<id>` of every change made (the API's waiters then read the job again). A
-- terminal `to` starts the job's retention (expire_finished).
-- Returns {1, previous status}, {0, status now ('' if no such job)}, or, when the batch
-- does not continue the stored history, {0, status, 'behind' or 'ahead', steps stored}.
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes
local change = cjson.decode(ARGV[2])
local history, checkpoint, model = ARGV[3], ARGV[4], ARGV[5]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, ''} end
if change.tenant and redis.call('HGET', KEYS[1], 'tenant') ~= change.tenant then
  return {0, ''}
end
local allowed = false
for _, s in ipairs(change.allowed) do
  if s == status then allowed = true end
end
if not allowed then return {0, status} end
local job = redis.call('HMGET', KEYS[1], 'run', 'recorded')
if change.token and job[1] ~= change.token then return {0, status} end
local recorded = tonumber(job[2] or '0')
if history ~= '' then
  if change.first_step ~= recorded then
    -- behind: Redis lost writes it had acknowledged; ahead: a retried write was applied before
    return {0, status, change.first_step > recorded and 'behind' or 'ahead', recorded}
  end
  redis.call('RPUSH', KEYS[2], history)
  redis.call('HINCRBY', KEYS[1], 'recorded', change.steps)
end
local fields = {}
for name, text in pairs(change.set) do
  fields[#fields + 1] = name
  fields[#fields + 1] = text
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
if checkpoint ~= '' then
  redis.call('SET', KEYS[3], checkpoint)
  local now = redis.call('HMGET', KEYS[1], 'recorded', 'progress', 'metrics', 'trained_seconds')
  redis.call('HSET', KEYS[1], 'cp_batches', redis.call('LLEN', KEYS[2]),
    'cp_recorded', now[1] or 0, 'cp_progress', now[2], 'cp_metrics', now[3],
    'cp_seconds', now[4] or 0, 'losses', 0)
end
if model ~= '' then
  redis.call('HSET', KEYS[4], 'doc', model, 'tenant', redis.call('HGET', KEYS[1], 'tenant') or '')
end
if change.webhook and not change.to then webhook_due(change.webhook) end
if change.to then move(change.to) end
if change.to == 'succeeded' or change.to == 'failed' or change.to == 'cancelled' then
  expire_finished(ARGV[6])
end
if change.publish then redis.call('PUBLISH', change.publish, 'cancel') end
if ARGV[7] and ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], 'job:' .. ARGV[1]) end
return {1, status}
"""
)

START = (
    _PRELUDE
    + """
-- Queued -> running for one run: a new attempt, its token, its lease.
-- ARGV: 2 ticket ('' = any), 3 run token, 4 lease milliseconds, 5 owner, 6 started_at (JSON),
-- 7 the changes channel ('' = none), told `job:<id>` when the job starts running.
-- Returns {1, attempt, spec, checkpoint ('' = none), seconds trained before, inline data
-- ('' = none)} or
-- {0, status now ('' if no such job, 'superseded' if the ticket is not the job's)}.
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes
local job = redis.call('HMGET', KEYS[1], 'status', 'run', 'ticket')
if not job[1] then return {0, ''} end
if not (job[1] == 'running' and job[2] == ARGV[3]) then  -- else: a retried start that took
  if job[1] ~= 'queued' then return {0, job[1]} end
  if ARGV[2] ~= '' and job[3] and job[3] ~= '' and job[3] ~= ARGV[2] then
    return {0, 'superseded'}
  end
  move('running')
  redis.call('HINCRBY', KEYS[1], 'attempt', 1)
  local from = redis.call('HGET', KEYS[1], 'recorded') or 0
  redis.call('HSET', KEYS[1], 'run', ARGV[3], 'run_from', from)
  if redis.call('HGET', KEYS[1], 'started_at') == 'null' then
    redis.call('HSET', KEYS[1], 'started_at', ARGV[6])
    webhook_due('start')
  end
  redis.call('DEL', KEYS[6])
  if ARGV[7] and ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], 'job:' .. ARGV[1]) end
end
local attempt = redis.call('HGET', KEYS[1], 'attempt')
redis.call('SET', KEYS[5], attempt .. ' ' .. ARGV[3] .. ' ' .. ARGV[5], 'PX', ARGV[4])
local fields = redis.call('HMGET', KEYS[1], 'spec', 'trained_seconds')
return {1, attempt, fields[1], redis.call('GET', KEYS[3]) or '', fields[2] or '0',
  redis.call('GET', KEYS[8]) or ''}
"""
)

DELETE = """
-- A job and everything of it but its model, at once, whatever its status, from every index
-- (its tenant's too): a running job's worker is told to cancel (and its writes find no job).
-- Its webhook deliveries go too, sent or not, and its sending mark. Only removals: it runs
-- when Redis is full.
-- ARGV: 1 job id, 2 its cancel channel, 3 the tenant whose job it must be, 4 the changes
-- channel ('' = none: told `job:<id>`). Returns the status it had ('' = no such job of the
-- tenant's).
local job = redis.call('HMGET', KEYS[1], 'status', 'tenant', 'tenant_jobs')
local status, own = job[1], job[3]
if not status or job[2] ~= ARGV[3] then return '' end
if status == 'running' then redis.call('PUBLISH', ARGV[2], 'cancel') end
for _, id in ipairs(redis.call('HKEYS', KEYS[11])) do
  redis.call('ZREM', KEYS[12], ARGV[1] .. ' ' .. id)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6], KEYS[8], KEYS[11], KEYS[13])
redis.call('HDEL', KEYS[10], ARGV[1])
for _, i in ipairs({7, 9}) do redis.call('ZREM', KEYS[i], ARGV[1]) end
for i = FIRST_STATUS_INDEX, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
if own then
  redis.call('ZREM', own, ARGV[1])
  for _, s in ipairs({STATUS_NAMES}) do redis.call('ZREM', own .. ':' .. s, ARGV[1]) end
end
if ARGV[4] and ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], 'job:' .. ARGV[1]) end
return status
""".replace("STATUS_NAMES", ", ".join(f"'{s}'" for s in STATUSES)).replace(
    "FIRST_STATUS_INDEX", str(len(JOB_KEYS) + 1)
)

DELETE_MODEL = """
-- KEYS: a model. ARGV: the tenant whose model it must be. 1 if deleted; 0 if there is no
-- such model of the tenant's (a model stored before tenants, a plain string, is no one's,
-- as reads see it).
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

HISTORY_PAGE = """
-- A page of a history: the batches holding steps ARGV[1] (since) to ARGV[1] + ARGV[2]
-- (limit) - 1, found by binary search on each batch's first step (the batches continue each
-- other exactly, from step 0), not by reading them all. KEYS: the history list.
-- Returns {batches, 1 if batches follow them else 0}.
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return {{}, 0} end
local function first(i)
  local batch = redis.call('LINDEX', KEYS[1], i)
  local step = string.match(batch, '^{"step":%[(%d+)')  -- as service.store.changes writes it
  if step then return tonumber(step) end
  return cjson.decode(batch).step[1]
end
-- the last batch, from `lo` on, whose first step is at or below `step` (else `lo`)
local function last_from(step, lo)
  local hi = n - 1
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if first(mid) <= step then lo = mid else hi = mid - 1 end
  end
  return lo
end
local since, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = last_from(since, 0)
local j = last_from(since + limit - 1, i)
return {redis.call('LRANGE', KEYS[1], i, j), j < n - 1 and 1 or 0}
"""

SET_IF_EXISTS = """
-- HSET on KEYS[1] only if it is still there (it expires; a late write must not bring it back
-- without its time to live), then DEL KEYS[2] if given. ARGV: field, value, field, value...
-- Returns 1 if written.
local written = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  written = 1
end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return written
"""

RENEW = """
-- KEYS: job, lease. ARGV: run token, lease milliseconds, the lease's value.
-- 1: renewed (taken again if it had lapsed); 0: the job is no longer this run's.
local job = redis.call('HMGET', KEYS[1], 'status', 'run')
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return 1
"""

STRANDED = """
-- KEYS: job, stranded mark. ARGV: a ticket seen missing from the queue, grace milliseconds.
-- 1 once the job has stayed queued on that ticket, missing, for the grace period (by Redis's
-- clock, the same for every worker); the first sighting is remembered in the mark.
if redis.replicate_commands then redis.replicate_commands() end
local job = redis.call('HMGET', KEYS[1], 'status', 'ticket')
if job[1] ~= 'queued' or (job[2] and job[2] ~= '' and job[2] ~= ARGV[1]) then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local mark = redis.call('GET', KEYS[2])
if mark then
  local ticket, since = string.match(mark, '^(%S+) (%d+)$')
  if ticket == ARGV[1] then return (now - tonumber(since) >= tonumber(ARGV[2])) and 1 or 0 end
end
redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. now, 'PX', 4 * tonumber(ARGV[2]))
return 0
"""


class Registered(NamedTuple):
    """The scripts, loaded on one connection (each called by its hash, loaded on demand)."""

    update: Script
    start: Script
    renew: Script
    stranded: Script
    delete: Script
    delete_model: Script
    history_page: Script


def register(connection: redis.Redis) -> Registered:
    texts = (UPDATE, START, RENEW, STRANDED, DELETE, DELETE_MODEL, HISTORY_PAGE)
    return Registered(*(connection.register_script(s) for s in texts))
