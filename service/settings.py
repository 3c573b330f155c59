"""The service's defaults: each is a config key (override with a `GRADSERVE_<NAME>`
environment variable or the mapping given to `create_app`)."""

REDIS_URL = "redis://127.0.0.1:6379/0"
"""Where Redis is; the bare `REDIS_URL` environment variable overrides it too."""

REDIS_SOCKET_TIMEOUT = 0.75
"""Seconds a Redis command may take before the API gives up on it and answers 503 (a refused
connection is retried once, at once; a slow one never): a request makes at most two round
trips to Redis, so a hung Redis costs it at most 1.5 s."""

REDIS_BULK_TIMEOUT = 10.0
"""Seconds a Redis command that carries a graph's document or result (up to
MAX_CONTENT_LENGTH bytes) may take: writing 30 MiB to a busy Redis can take longer than
REDIS_SOCKET_TIMEOUT, so these commands have a connection of their own and every other
command keeps the short timeout."""

RETRY_AFTER = 2
"""Seconds a 503 (Redis unreachable) tells the client to wait (`Retry-After`)."""

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
a third of level 6's time (12.8 %), measured on a 3.9 MiB graph result."""

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

MAX_PREDICT_ROWS = 100_000
"""Rows of `x` one predict request may hold (more: 422)."""

PAGE_SIZE = 20
"""Jobs per page of GET /v1/jobs when `limit` is not given."""

MAX_PAGE_SIZE = 100
"""The largest `limit` GET /v1/jobs accepts."""

GRAPH_TTL = 24 * 60 * 60
"""Seconds a graph evaluation (its document and result) is kept."""

IDEMPOTENCY_TTL = 24 * 60 * 60
"""Seconds an Idempotency-Key is remembered."""

JOB_TIMEOUT = 7 * 24 * 60 * 60
"""Seconds (an integer) a job may train, all its runs together (time up to its latest
checkpoint counts; a resumed run goes on with what is left), and one graph evaluation may
take; then it fails as `timed-out`."""

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
