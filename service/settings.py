"""The service's defaults: each is a config key (override with a `GRADSERVE_<NAME>`
environment variable or the mapping given to `create_app`)."""

REDIS_URL = "redis://127.0.0.1:6379/0"
"""Where Redis is; the bare `REDIS_URL` environment variable overrides it too."""

REDIS_SOCKET_TIMEOUT = 0.75
"""Seconds a Redis command may take before the API gives up on it and answers 503 (a refused
connection is retried once, at once; a slow one never). A hung Redis ends a request with a 503
at the first command that times out: the key check's, or with AUTH off the route's first, after
the rate limiter's (which lets the request through): at most 1.5 s."""

REDIS_MAX_CONNECTIONS = 100
"""Connections each Redis client of a process opens at most (an API process has three: its
commands', bulk writes' and readiness checks'). A request that finds them all in use waits
for one, up to its command's timeout, then answers 503: with redis-py's own pool the 101st
at once failed outright (400 pollers at once got 68% 503s)."""

AUTH = True
"""Every `/v1` request needs an API key (`Authorization: Bearer <key>`; `python -m
service.keys` makes them). Off (GRADSERVE_AUTH=off) serves every request as tenant `local`,
and the API then refuses to start unless it binds a loopback address only."""

KEY_CACHE_SECONDS = 5.0
"""Seconds an API process remembers a key it found valid before it looks it up in Redis
again: a revoked key is refused everywhere at most this long after `python -m service.keys
revoke`. 0: every request looks its key up (a revoke takes effect at the next request)."""
METRICS = "loopback"
"""Who may read GET /metrics (Prometheus): `loopback` (clients connecting from a loopback
address, 127.0.0.0/8 or ::1, and anyone sending METRICS_TOKEN), `token` (only clients sending
METRICS_TOKEN, loopback too: behind a proxy on the same machine every client is loopback),
`open` (anyone) or `off` (404 for all, and requests are not counted). Refused without a
token to try: 404, as if absent."""

METRICS_TOKEN = None
"""A secret that opens GET /metrics as `Authorization: Bearer <token>` (at least 16
characters; `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); None: none."""

REDIS_BULK_TIMEOUT = 10.0
"""Seconds a Redis command that carries a graph's document or result (up to
MAX_CONTENT_LENGTH bytes) may take: writing 30 MiB to a busy Redis can take longer than
REDIS_SOCKET_TIMEOUT, so these commands have a connection of their own and every other
command keeps the short timeout."""

RETRY_AFTER = 2
"""Seconds a 503 (Redis unreachable) tells the client to wait (`Retry-After`)."""

RATE_LIMIT = "600/minute"
"""Requests one API key may make to /v1, whatever their answer, in a moving window: `N/second`,
`N/minute`, `N/hour` or `N/day`, several joined by `;` (`10/second;600/minute`); empty: no
limit. Beyond it: 429 with `Retry-After`. With AUTH off, per client address."""

RATE_LIMIT_SUBMIT = "60/minute"
"""Of those, the submissions (POST /v1/jobs and POST /v1/graphs) one API key may make: each
costs a worker or an evaluation in the request, so this budget is tighter."""

RATE_LIMIT_UNAUTHENTICATED = "60/minute"
"""/v1 requests with no valid API key (401s) one client address may make; beyond it they are
429. A valid key is never refused for its address's count (behind a proxy every client has the
proxy's address)."""

MAX_ACTIVE_JOBS = 20
"""Jobs one tenant may have queued or running at once; one more is 429 (too-many-active-jobs)
until one finishes or is cancelled."""

ACTIVE_JOBS_RETRY_AFTER = 10
"""Seconds the 429 of MAX_ACTIVE_JOBS tells the client to wait (`Retry-After`): when to look
again whether one of its jobs has finished."""

WORKER_REDIS_TIMEOUT = 5.0
"""Seconds one Redis command of a running job may take (a failed history write is retried at
the next flush; training goes on meanwhile)."""

WORKER_RIDE_THROUGH = 30.0
"""Seconds a worker's main loop keeps retrying Redis while it is unreachable before it gives
up and exits (`make run` then starts another)."""

READINESS_TIMEOUT = 1.0
"""Seconds /readyz waits for Redis to answer PING before reporting 503."""

QUEUE_NAME = "gradserve"
"""The rq queue that holds training jobs and queued graph evaluations."""

MAX_CONTENT_LENGTH = 32 * 1024 * 1024
"""Bytes a request body may hold (larger: 413, also when it is sent chunked)."""

REQUEST_READ_TIMEOUT = 10.0
"""Seconds each 64 KiB of a request body (or the rest of it) may take to arrive: a body that
stalls, or trickles in slower than 6.4 KiB/s, is answered 408 and its connection closed.
(The request line and headers have gunicorn's `keepalive`, 5 s: api/gunicorn_conf.py.)"""

MAX_JSON_DEPTH = 64
"""Levels of nesting a JSON body may have (a graph/1 document and a job spec have 4; more:
400)."""

MAX_JSON_NUMBER_DIGITS = 100
"""Digits one number of a JSON body may have (a float needs at most 17, plus 3 of exponent;
more: 400)."""

HEAVY_BODY_BYTES = 64 * 1024
"""A request whose body (or, for a graph drawn as DOT, its stored document) is over this
many bytes is heavy: its parse and evaluation run in a native thread, so the worker's event
loop goes on serving its other connections, and it holds one of the worker process's
HEAVY_REQUESTS slots until it ends."""

HEAVY_REQUESTS = 1
"""Heavy requests one API worker process serves at a time (the others wait for a slot): a
30 MiB graph takes about 350 MB while it is parsed and checked, so this bounds the API's
memory to about `workers` such requests."""

HEAVY_WAIT = 60.0
"""Seconds a heavy request waits for a slot before it is answered 503 with Retry-After."""

GZIP_MIN_BYTES = 1024
"""Responses of at least this many bytes are gzip-compressed for clients that send
`Accept-Encoding: gzip` (never event streams)."""

GZIP_LEVEL = 1
"""zlib's compression level for responses: JSON of numbers shrinks to 13.4 % at level 1 in
a third of level 6's time (12.8 %), measured on a 3.9 MiB graph result. Level 1 is written
by ISA-L's igzip, the same format in a quarter of zlib's time."""

MAX_GRAPH_NODES = 500_000
"""Nodes a graph/1 document may hold (more: 422)."""

GRAPH_INLINE_MAX_NODES = 20_000
"""Graphs with more nodes than this are queued (202) rather than evaluated in the request."""

MAX_STEPS = 1_000_000
"""Training steps a job may ask for (more: 422)."""

MAX_PARAMETERS = 1_000_000
"""Parameters a job's network may have (more: 422)."""

MAX_SAMPLES = 1_000_000
"""Training samples a job may use, inline or generated (more: 422)."""

MAX_JOB_WORK = 10**12
"""A job's work, parameters x samples per step (batch_size, else all) x steps, may be at most
this (more: 422). On a 2-core machine the compiled engine does about 1.1e8 of it a second on
narrow networks (a step's overhead dominates) and up to 1.5e9 on wide ones: the largest job
admitted trains for about 10 minutes (wide) to 2.5 hours (narrow; past the default timeout).
The contract's minimums (100,000 steps, parameters or samples, each with the demo's other
sizes) are at most 3.4e9, a few seconds to a minute."""

MAX_JOB_MEMORY = 2 * 2**30
"""Bytes a job is estimated to take at its peak (engine.spec.job_memory: the compiled engine's
traced graph, about 2.4 kB per parameter, the reference engine's graph per parameter and
sample of a step, the data), at most (more: 422). The largest network it admits has about
780,000 parameters (MAX_PARAMETERS is the ceiling above it)."""

JOB_TIMEOUT_DEFAULT = 60 * 60
"""Seconds (an integer) a job may train, all its runs together, unless its spec says
`timeout`: then it fails with problem type `timeout`."""

MAX_JOB_TIMEOUT = 24 * 60 * 60
"""The largest `timeout` (seconds) a job spec may ask for (more: 422)."""

MAX_PREDICT_ROWS = 100_000
"""Rows of `x` one predict request may hold (more: 422)."""

PAGE_SIZE = 20
"""Jobs per page of GET /v1/jobs when `limit` is not given."""

MAX_PAGE_SIZE = 100
"""The largest `limit` GET /v1/jobs accepts."""

LIST_SCAN_LIMIT = 1000
"""Jobs one page of GET /v1/jobs?metadata.KEY=VALUE looks at, at most: a page may then hold
fewer than `limit` matching jobs (even none) and a `next_cursor` to go on from where it
stopped, so a rare match among many jobs costs many cheap pages, never one unbounded one."""

GRAPH_TTL = 24 * 60 * 60
"""Seconds a graph evaluation (its document and result) is kept; never longer than
RETENTION_DAYS."""

RETENTION_DAYS = 30
"""Days a finished job (succeeded, failed or cancelled) is kept after it finished, with its
history, checkpoint, inline data and model; then Redis deletes them (a number: 0.5 is 12
hours). A job keeps the retention in force when it was submitted."""

HISTORY_PAGE_SIZE = 10_000
"""Steps per page of GET /v1/jobs/{id}/history when `limit` is not given."""

MAX_HISTORY_PAGE_SIZE = 100_000
"""The largest `limit` GET /v1/jobs/{id}/history accepts."""

REDIS_MAXMEMORY = "1gb"
"""The memory ceiling of `make run`'s bundled Redis (its `maxmemory`: bytes, or with a unit:
"512mb", "2gb"). It never evicts: when it is full, writes are refused (the API answers 503)
and everything stored stays."""

STORE_FULL_RETRY_AFTER = 60
"""Seconds a 503 `store-full` (Redis at its memory ceiling) tells the client to wait: room is
made by retention and deletes, not by a restart."""

IDEMPOTENCY_TTL = 24 * 60 * 60
"""Seconds an Idempotency-Key is remembered."""

JOB_TIMEOUT = 25 * 60 * 60
"""Seconds (an integer) one run of a queued function may take (rq's own timeout): a graph
evaluation past it fails; for a training run it is a backstop above MAX_JOB_TIMEOUT (the job's
own `timeout` stops it first)."""

LEASE_TTL = 10.0
"""Seconds a running job's lease lasts unless its worker renews it (every third of it): a job
whose worker is gone is taken up again within this, plus REAPER_INTERVAL."""

REAPER_INTERVAL = 2.0
"""Seconds between two passes of the reaper (in every worker; one pass per interval runs)."""

MAX_LOST_RUNS = 3
"""Runs of one job that may be lost in a row (its worker killed, its lease expired) without a
new checkpoint in between; at one more the job fails as `worker-lost`: it is probably what
kills its worker."""

WRITE_PATIENCE = 30.0
"""Seconds a worker keeps retrying a job's start or final write (result, failure, hand-back)
while Redis is unreachable; after that the job is left to the reaper, which resumes it."""

HISTORY_FLUSH_INTERVAL = 0.25
"""Seconds of wall time between two writes of a running job's history and progress."""

CHECKPOINT_INTERVAL = 1.0
"""Seconds of wall time between two saved checkpoints of a running job (a resumed job
recomputes at most this much)."""

MAX_EVENT_STREAMS = 500
"""Event streams (GET /v1/jobs/{id}/events) one API process holds open at once; one more is
503 (`too-many-streams`) with Retry-After. Each costs a greenlet and about 40 kB, not a Redis
connection; keep it well under gunicorn's `worker_connections` (1000) so streams never
take every connection of a process. Requests waiting with `Prefer: wait` count too (beyond
the cap they are answered at once, the preference not applied)."""

EVENTS_RETRY_MS = 2000
"""Milliseconds an event stream tells its client to wait before reconnecting (`retry:`)."""

EVENTS_HEARTBEAT = 15.0
"""Seconds of silence after which an event stream sends a comment line, so that proxies
and load balancers keep it open."""

EVENTS_INTERVAL = 0.25
"""Seconds at least between two progress events of a stream (steps that come sooner are
sent together in the next)."""

NOTIFY_RECHECK = 5.0
"""Seconds a stream or a `Prefer: wait` request waits without news before it reads the
store again: the most a lost notification (a Redis restart) can delay it."""

MAX_WAIT = 60
"""Seconds at most a request with `Prefer: wait=N` is held (a larger N is cut to this)."""

API_TITLE = "gradserve"
"""The OpenAPI document's title."""

API_VERSION = "v1"
"""The OpenAPI document's version of the API."""

OPENAPI_VERSION = "3.0.3"
"""The OpenAPI version the document is written in."""

OPENAPI_URL_PREFIX = "/"
"""Where the OpenAPI document and the docs pages hang."""

OPENAPI_JSON_PATH = "openapi.json"
"""The OpenAPI document's path (under OPENAPI_URL_PREFIX)."""

OPENAPI_SWAGGER_UI_PATH = "docs"
"""The human docs page's path (Swagger UI; its assets come from OPENAPI_SWAGGER_UI_URL)."""

OPENAPI_SWAGGER_UI_URL = "/docs-assets/swagger-ui/"
"""Where the docs page loads Swagger UI from: the API's own copy (service/api/docs_assets.py)."""

OPENAPI_SWAGGER_UI_CONFIG = {"validatorUrl": None}
"""Swagger UI's options: no online validator (it would send the document's URL to another
host and show its badge)."""

OPENAPI_REDOC_PATH = "redoc"
"""A second docs page, ReDoc."""

OPENAPI_REDOC_URL = "/docs-assets/redoc/redoc.standalone.js"
"""Where the ReDoc page loads ReDoc from: the API's own copy (service/api/docs_assets.py)."""

WEBHOOK_ALLOW_PRIVATE = False
"""Let job webhooks target loopback, private, link-local and other non-public addresses (a
receiver on the operator's own network, or tests). Off: such URLs are refused at submit (422)
and at every delivery."""

WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds to wait before each retry of a webhook delivery that failed (the first attempt is
at once): Standard Webhooks' schedule, 8 attempts over about 27 hours. A list, or a string of
numbers joined by commas (GRADSERVE_WEBHOOK_RETRY_SCHEDULE=1,2). After the last: `failed`."""

WEBHOOK_CONNECT_TIMEOUT = 5.0
"""Seconds a delivery may take to connect (and finish TLS)."""

WEBHOOK_READ_TIMEOUT = 10.0
"""Seconds a delivery may then take to send the body and get the whole response head."""

WEBHOOK_PROGRESS_INTERVAL = 5.0
"""Seconds between two `progress` deliveries of one job, at least."""

WEBHOOK_SENDERS = 2
"""Threads sending webhook deliveries in each worker's main process."""

WEBHOOK_LEASE = 60.0
"""Seconds a sender holds a delivery it claimed; a sender that dies leaves it to another
after this (longer than an attempt can take)."""

WEBHOOK_POLL_INTERVAL = 0.5
"""Seconds an idle sender waits before it looks for due deliveries again."""
