"""The service's own exceptions; `service.api.boundary` turns each into a problem response."""

from typing import Any


class ServiceError(Exception):
    """An error a client can act on: the HTTP status and title of its problem."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extensions: dict[str, Any] = {}  # more members of its problem object


class NotFound(ServiceError):
    """No such job, model or graph (or a malformed id)."""

    status, title, slug = 404, "Not found", "not-found"

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"there is no {kind} {resource_id!r}")


class NoInlineData(ServiceError):
    """GET /v1/jobs/{id}/data of a job whose data is generated (its spec's `dataset`)."""

    status, title, slug = 404, "Not found", "not-found"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"job {job_id!r} has no inline data: it trains on a generated data set "
            "(its spec's dataset)"
        )


class JobFinished(ServiceError):
    """A job that has finished cannot be cancelled."""

    status, title, slug = 409, "Job already finished", "job-finished"

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id!r} is already {status}; a finished job stays as it is")


class IdempotencyKeyReused(ServiceError):
    """An Idempotency-Key sent again with a different request body."""

    status, title, slug = 422, "Idempotency-Key reused", "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used with a different request body; "
            "use a new key for a new job"
        )


class InvalidParameter(ServiceError):
    """A value the schemas cannot judge alone (a limit from the config, a cursor)."""

    status, title, slug = 422, "Invalid input", "invalid-input"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", [{"path": path, "message": message}])


class TooManyActiveJobs(ServiceError):
    """A tenant already has as many jobs queued or running as it may (MAX_ACTIVE_JOBS)."""

    status, title, slug = 429, "Too many active jobs", "too-many-active-jobs"

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(
            f"you have {active} jobs queued or running, and at most {limit} may be "
            "(MAX_ACTIVE_JOBS); submit again once one has finished or been cancelled"
        )
        self.extensions = {"active_jobs": active, "max_active_jobs": limit}


class JsonNotAccepted(ServiceError):
    """A JSON body the API does not read: nested too deep, a number of too many digits, or
    a key twice in one object (JSON leaves duplicate keys undefined: parsers differ)."""

    status, title, slug = 400, "JSON not accepted", "json-not-accepted"


class NotAcceptable(ServiceError):
    """No representation of the resource matches the request's `Accept`."""

    status, title, slug = 406, "Not acceptable", "not-acceptable"

    def __init__(self, available: list[str]) -> None:
        super().__init__(f"this resource is served as {' or '.join(available)}")
        self.extensions["acceptable"] = available


class GraphNotEvaluated(ServiceError):
    """A graph that has no evaluation to draw: still queued or running, or failed."""

    status, title, slug = 409, "Graph not evaluated", "graph-not-evaluated"

    def __init__(self, graph_id: str, status: str, reason: str | None = None) -> None:
        if status == "failed":
            detail = f"graph {graph_id!r} failed ({reason}); there is nothing to draw"
        elif status == "succeeded":
            detail = f"graph {graph_id!r} no longer has its document stored to draw it"
        else:
            detail = f"graph {graph_id!r} is {status}; ask again once it has succeeded"
        super().__init__(detail)
        self.extensions["graph_status"] = status


class TooManyStreams(ServiceError):
    """This API process holds MAX_EVENT_STREAMS event streams open already."""

    status, title, slug = 503, "Too many streams", "too-many-streams"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server holds {limit} event streams open already (MAX_EVENT_STREAMS); "
            "try again after Retry-After seconds, or poll GET /v1/jobs/{id}"
        )


class Busy(ServiceError):
    """A heavy request that found no free slot in time (HEAVY_WAIT)."""

    status, title, slug = 503, "Busy", "busy"


class RateLimited(Exception):
    """Over a rate limit (service/api/ratelimit.py): `limit` names the budget ("600 per 1
    minute"), `setting` the setting it comes from, `period` its window in seconds."""

    def __init__(self, description: str, limit: str, period: int) -> None:
        super().__init__(description)
        self.description, self.limit, self.period = description, limit, period
