"""Training jobs: submit, list, read, follow the history, read the inline data, cancel,
delete."""

import hashlib
import re
from typing import Any, NamedTuple

from flask import Response, current_app, request
from flask.views import MethodView

from engine.data import load
from engine.spec import MAX_METADATA_KEY, MAX_METADATA_PAIRS, normalize_spec
from engine.value import paused_gc
from schemas import (
    DataArgsSchema,
    HistoryArgsSchema,
    HistorySchema,
    InlineDataSchema,
    JobListArgsSchema,
    JobListSchema,
    JobSchema,
    JobSpecSchema,
)
from schemas.dump import dumper

from ...config import limits
from ...errors import InvalidParameter, JobFinished, NoInlineData, NotFound, TooManyStreams
from ...store.jobdata import canonical, sorted_json, summary
from ...store.keys import Keys
from ...store.queue import training_enqueuer
from ...strictjson import dumps
from ..auth import tenant
from ..concurrency import run_cpu_bound
from ..events import TERMINAL, StreamSettings, job_events
from ..extensions import services
from ..prefer import wait_until_finished, waiting
from ..ratelimit import read_ahead
from ..smorest import Blueprint
from .webhooks import refuse_unsafe_webhook

blp = Blueprint(
    "jobs",
    __name__,
    url_prefix="/v1/jobs",
    description="Train an MLP on a worker and follow it step by step.",
)
JSON = "application/json"
JOB = dumper(JobSchema())
"""The job resource as JobSchema dumps it, for the hot GET (schemas/dump.py)."""
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
LOCATION = {"Location": {"description": "The job resource.", "schema": {"type": "string"}}}
EXAMPLE = {
    "model": {"inputs": 2, "layers": [16, 16, 1], "activation": "relu"},
    "dataset": {"name": "moons", "samples": 100, "noise": 0.1, "seed": 0},
    "loss": "hinge",
    "optimizer": {"name": "sgd", "learning_rate": 1.0, "final_learning_rate": 0.1},
    "l2": 0.0001,
    "steps": 100,
    "batch_size": None,
    "seed": 1337,
}


def fingerprint(body: Any, data_text: bytes | None = None) -> str:
    """The same JSON body, however it was spaced or ordered, gives the same fingerprint:
    the sha256 of `json.dumps(body, sort_keys=True, separators=(",", ":"))`. With
    `data_text`, the inline data's canonical text (that same writing of body["data"]), the
    data is not written again: one call writing it would hold the GIL, and so the event
    loop, for a second per 20 MiB."""
    if data_text is None:
        text = sorted_json(body)
    else:  # the object as json.dumps writes it: its items in key order
        items = (
            sorted_json(key) + b":" + (data_text if key == "data" else sorted_json(value))
            for key, value in sorted(body.items())
        )
        text = b"{" + b",".join(items) + b"}"
    return hashlib.sha256(text).hexdigest()


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidParameter("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    return key


class Submission(NamedTuple):
    spec: dict  # its inline data, if any, as the summary the job resource shows
    inline: bytes | None  # the inline data's canonical text
    fingerprint: str | None  # the body's, when an Idempotency-Key came with it


def submission(body: dict, limits: dict[str, int | None], keyed: bool) -> Submission:
    """The CPU work of a submission, for the request to run in a native thread when its
    body is large (a million samples: checked, written out and hashed in seconds)."""
    # The checked rows are a list each: made and dropped while the collector is paused,
    # it never walks them (0.3 s of a 400,000-sample submission).
    with paused_gc():
        spec, inline = normalize_spec(body, limits), None
        if "data" in spec:
            inline = canonical(body["data"])
            spec["data"] = summary(spec["data"], inline)
        return Submission(spec, inline, fingerprint(body, inline) if keyed else None)


def generated_data(spec: dict) -> bytes:
    """A generated data set as canonical JSON, as inline data is served."""
    x, y = load(spec)
    return canonical({"x": x.tolist(), "y": y.tolist()})


def existing_job(job_id: str) -> dict:
    job = services().store.get_job(job_id, tenant=tenant())
    if job is None:
        raise NotFound("job", job_id)
    return job


PREFER_WAIT = {
    "in": "header",
    "name": "Prefer",
    "schema": {"type": "string"},
    "description": "`wait=N` (RFC 7240): hold the answer up to N seconds (at most MAX_WAIT, "
    "60 unless configured) until the job has finished, then answer with its state then; "
    "`Preference-Applied: wait=N` says it was honoured.",
}


def waited(job: dict, headers: dict[str, str]) -> dict:
    """The job once it has finished, or after `Prefer: wait=N` seconds (at once without
    one); the headers say whether the wait was honoured."""
    headers["Vary"] = "Prefer"
    with waiting() as seconds:
        if seconds is None:
            return job
        headers["Preference-Applied"] = f"wait={seconds}"
        if job["status"] in TERMINAL:
            return job
        store, owner = services().store, tenant()
        latest = wait_until_finished(
            Keys.changed_job(job["id"]),
            lambda: store.get_job(job["id"], tenant=owner),
            lambda found: found["status"] in TERMINAL,
            seconds,
        )
        return latest or job  # deleted meanwhile: as it was


def metadata_filters() -> list[tuple[str, str]]:
    """The `metadata.KEY=VALUE` pairs of the query (each must hold; a key given twice with
    two values matches nothing)."""
    pairs = []
    for name in request.args:
        if not name.startswith("metadata."):
            continue
        key = name.removeprefix("metadata.")
        if not 1 <= len(key) <= MAX_METADATA_KEY:
            raise InvalidParameter(name, f"a metadata key is 1 to {MAX_METADATA_KEY} characters")
        pairs += [(key, value) for value in request.args.getlist(name)]
    if len(pairs) > MAX_METADATA_PAIRS:
        raise InvalidParameter("metadata", f"at most {MAX_METADATA_PAIRS} filters")
    return pairs


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListArgsSchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict) -> dict:
        """Your jobs, newest first, a page at a time: follow `next_cursor` until it is null.

        `metadata.KEY=VALUE` (any number, all must hold; with `status` too) lists only the
        jobs whose metadata carries them. Such a page looks at 1,000 jobs at most
        (LIST_SCAN_LIMIT), so it may hold fewer than `limit`, even none, with a
        `next_cursor` to go on: follow it until it is null."""
        config = current_app.config
        limit = args.get("limit", config["PAGE_SIZE"])
        if not 1 <= limit <= config["MAX_PAGE_SIZE"]:
            raise InvalidParameter("limit", f"must be from 1 to {config['MAX_PAGE_SIZE']}")
        items, next_cursor = services().store.list_jobs(
            limit,
            args.get("cursor"),
            args.get("status"),
            tenant=tenant(),
            metadata=metadata_filters(),
            scan=config["LIST_SCAN_LIMIT"],
        )
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(JobSpecSchema, example=EXAMPLE)
    @blp.response(
        202,
        JobSchema,
        headers=LOCATION,
        description="Queued (or, with an "
        "Idempotency-Key seen before and the same body, the job it made then).",
    )
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.doc(
        parameters=[
            PREFER_WAIT,
            {
                "in": "header",
                "name": "Idempotency-Key",
                "schema": {"type": "string"},
                "description": "Submit at most once: the same key and body give "
                "the same job; the same key with another body is a 422.",
            },
        ]
    )
    def post(self, body: dict) -> tuple[dict, int, dict]:
        """Submit a training job: it is queued for a worker."""
        config, key = current_app.config, idempotency_key()
        weight = len(request.get_data(cache=True))  # read already, chunked or not
        made = run_cpu_bound(weight, submission, body, limits(config), key is not None)
        refuse_unsafe_webhook(made.spec)
        job, replayed = services().store.create_job(
            made.spec,
            training_enqueuer(services().queue),
            None if key is None else (key, made.fingerprint, config["IDEMPOTENCY_TTL"]),
            made.inline,
            tenant=tenant(),
            max_active=config["MAX_ACTIVE_JOBS"],
        )
        headers = {"Location": f"/v1/jobs/{job['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return waited(job, headers), 202, headers


@blp.route("/<job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(parameters=[PREFER_WAIT])
    def get(self, job_id: str) -> Response:
        """A job: its status, progress, latest metrics, and model or error when done."""
        # Polling is most of the traffic: the job as the rate limiter read it with its count
        # (one round trip), the schema's dump compiled once (schemas/dump.py).
        job = services().store.get_job(job_id, tenant=tenant(), record=read_ahead())
        if job is None:
            raise NotFound("job", job_id)
        headers: dict[str, str] = {}
        job = waited(job, headers)
        return Response(dumps(JOB(job)), mimetype=JSON, headers=headers)

    @blp.response(204, description="Deleted (a queued or running job is cancelled first).")
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, job_id: str) -> tuple[str, int]:
        """Delete a job with its history, checkpoint and inline data (its model stays:
        DELETE /v1/models/{id}); a queued or running job is cancelled first."""
        if not services().store.delete_job(job_id, tenant=tenant()):  # checks the owner
            raise NotFound("job", job_id)
        return "", 204


@blp.route("/<job_id>/history")
class History(MethodView):
    @blp.arguments(HistoryArgsSchema, location="query")
    @blp.response(200, HistorySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict, job_id: str) -> tuple[dict, int, dict]:
        """Loss and accuracy of each step recorded so far (written a few times a second),
        a page at a time: `since` the first step, `limit` steps at most."""
        config = current_app.config
        since, limit = args.get("since", 0), args.get("limit", config["HISTORY_PAGE_SIZE"])
        if since < 0:
            raise InvalidParameter("since", "must be a step number (0 or more)")
        if not 1 <= limit <= config["MAX_HISTORY_PAGE_SIZE"]:
            raise InvalidParameter("limit", f"must be from 1 to {config['MAX_HISTORY_PAGE_SIZE']}")
        page = services().store.history(job_id, since, limit, tenant=tenant())
        if page is None:
            raise NotFound("job", job_id)
        headers = {}
        if page["next_since"] is not None:
            query = f"since={page['next_since']}&limit={limit}"
            headers["Link"] = f'</v1/jobs/{job_id}/history?{query}>; rel="next"'
        return page, 200, headers


EVENTS_DESCRIPTION = """Server-Sent Events (`text/event-stream`), e.g.

```
retry: 2000

event: status
data: {"id": "...", "status": "running", "progress": {"step": 0, "steps": 100}, ...}

id: 41
event: progress
data: {"step": [0, 1, ..., 41], "loss": [...], "accuracy": [...]}

event: status
data: {"id": "...", "status": "succeeded", ...}
```

`status` events carry the job resource and no id; `progress` events the steps since the
previous one (the history's shape), with the last step as id. The stream ends after the
terminal status, which always comes last."""

LAST_EVENT_ID = {
    "in": "header",
    "name": "Last-Event-ID",
    "schema": {"type": "string"},
    "description": "The id of the last event received (a step number): the stream resumes "
    "at the next step, with no gap and no repeat. Browsers' EventSource sends it by itself "
    "when it reconnects.",
}


def last_event_id() -> int:
    """The first step to send: after Last-Event-ID (a step number), else 0."""
    text = request.headers.get("Last-Event-ID", "").strip()
    if not text:
        return 0
    if not text.isdigit() or len(text) > 18:
        raise InvalidParameter("Last-Event-ID", "must be the id of an event: a step number")
    return int(text) + 1


@blp.route("/<job_id>/events")
class Events(MethodView):
    @blp.response(
        200,
        {"type": "string"},
        content_type="text/event-stream",
        description=EVENTS_DESCRIPTION,
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")  # too many streams open
    @blp.doc(parameters=[LAST_EVENT_ID])
    def get(self, job_id: str) -> Response:
        """Follow a job live: its status changes and its steps as they are recorded."""
        since, config = last_event_id(), current_app.config
        existing_job(job_id)  # 404 before the stream starts
        notifier, limit = services().notifier, config["MAX_EVENT_STREAMS"]
        if not notifier.acquire(limit):
            raise TooManyStreams(limit)
        settings = StreamSettings(
            retry_ms=config["EVENTS_RETRY_MS"],
            heartbeat=config["EVENTS_HEARTBEAT"],
            interval=config["EVENTS_INTERVAL"],
            page=config["HISTORY_PAGE_SIZE"],
        )
        stream = job_events(
            services().store, notifier, job_id, tenant(), since, settings, JobSchema().dump
        )
        response = Response(stream, mimetype="text/event-stream")
        response.call_on_close(notifier.release)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response


@blp.route("/<job_id>/data")
class Data(MethodView):
    @blp.response(
        200,
        InlineDataSchema,
        description="The inline data as submitted, as canonical JSON (keys sorted, no "
        "spaces): the sha256 of this body is the job's spec.data.sha256.",
    )
    @blp.arguments(DataArgsSchema, location="query")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict, job_id: str) -> Response:
        """A job's inline training data (a generated data set is a 404, unless `generated`
        asks for it: the console draws it under a model's decision boundary)."""
        spec = existing_job(job_id)["spec"]
        if "data" not in spec:
            if not args["generated"]:
                raise NoInlineData(job_id)
            weight = spec["dataset"]["samples"] * spec["model"]["inputs"] * 8
            return Response(run_cpu_bound(weight, generated_data, spec), mimetype=JSON)
        data = services().store.job_data(job_id, tenant=tenant())
        if data is None:
            raise NotFound("job", job_id)  # deleted meanwhile
        return Response(data, mimetype=JSON)


@blp.route("/<job_id>/cancel")
class Cancel(MethodView):
    @blp.response(
        200,
        JobSchema,
        description="Cancelled: a queued job at once; a running "
        "one stops at its next step and records nothing more.",
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, job_id: str) -> dict:
        """Cancel a queued or running job."""
        done, status = services().store.cancel(job_id, tenant=tenant())
        if not status:
            raise NotFound("job", job_id)
        if not done:
            raise JobFinished(job_id, status)
        return existing_job(job_id)
