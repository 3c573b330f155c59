"""Training jobs: submit, list, read, follow the history, read the inline data, cancel,
delete."""

import hashlib
import json
import re
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from engine.spec import normalize_spec
from schemas import (
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
from ...errors import InvalidParameter, JobFinished, NoInlineData, NotFound
from ...store.queue import training_enqueuer
from ...strictjson import dumps
from ..auth import tenant
from ..extensions import services
from ..ratelimit import read_ahead
from ..smorest import Blueprint

blp = Blueprint(
    "jobs",
    __name__,
    url_prefix="/v1/jobs",
    description="Train an MLP on a worker and follow it step by step.",
)
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


def fingerprint(body: Any) -> str:
    """The same JSON body, however it was spaced or ordered, gives the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency(body: Any) -> tuple[str, str, int] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidParameter("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    return key, fingerprint(body), current_app.config["IDEMPOTENCY_TTL"]


def existing_job(job_id: str) -> dict:
    job = services().store.get_job(job_id, tenant=tenant())
    if job is None:
        raise NotFound("job", job_id)
    return job


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobListArgsSchema, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict) -> dict:
        """Your jobs, newest first, a page at a time: follow `next_cursor` until it is null."""
        config = current_app.config
        limit = args.get("limit", config["PAGE_SIZE"])
        if not 1 <= limit <= config["MAX_PAGE_SIZE"]:
            raise InvalidParameter("limit", f"must be from 1 to {config['MAX_PAGE_SIZE']}")
        items, next_cursor = services().store.list_jobs(
            limit, args.get("cursor"), args.get("status"), tenant=tenant()
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
            {
                "in": "header",
                "name": "Idempotency-Key",
                "schema": {"type": "string"},
                "description": "Submit at most once: the same key and body give "
                "the same job; the same key with another body is a 422.",
            }
        ]
    )
    def post(self, body: dict) -> tuple[dict, int, dict]:
        """Submit a training job: it is queued for a worker."""
        spec = normalize_spec(body, limits(current_app.config))
        job, replayed = services().store.create_job(
            spec,
            training_enqueuer(services().queue),
            idempotency(body),
            body.get("data"),
            tenant=tenant(),
            max_active=current_app.config["MAX_ACTIVE_JOBS"],
        )
        headers = {"Location": f"/v1/jobs/{job['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return job, 202, headers


@blp.route("/<job_id>")
class Job(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, job_id: str) -> Response:
        """A job: its status, progress, latest metrics, and model or error when done."""
        # Polling is most of the traffic: the job as the rate limiter read it with its count
        # (one round trip), the schema's dump compiled once (schemas/dump.py).
        job = services().store.get_job(job_id, tenant=tenant(), record=read_ahead())
        if job is None:
            raise NotFound("job", job_id)
        return Response(dumps(JOB(job)), mimetype="application/json")

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


@blp.route("/<job_id>/data")
class Data(MethodView):
    @blp.response(
        200,
        InlineDataSchema,
        description="The inline data as submitted, as canonical JSON (keys sorted, no "
        "spaces): the sha256 of this body is the job's spec.data.sha256.",
    )
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, job_id: str) -> Response:
        """A job's inline training data (404 for a job that trains on a generated data set)."""
        if "data" not in existing_job(job_id)["spec"]:
            raise NoInlineData(job_id)
        data = services().store.job_data(job_id, tenant=tenant())
        if data is None:
            raise NotFound("job", job_id)  # deleted meanwhile
        return Response(data, mimetype="application/json")


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
