"""Problem details (RFC 9457) as plain dicts: for error responses and for a failed job's
`error`. No Flask here, so the worker builds them too."""

from typing import Any

from engine.errors import NumericError

TYPE_PREFIX = "tag:gradserve,2026:problem/"
"""Problem types are tag URIs (RFC 4151): stable names, documented in docs/API.md."""

Problem = dict[str, Any]


def problem(
    title: str,
    status: int | None = None,
    detail: str | None = None,
    slug: str | None = None,
    **extensions: Any,
) -> Problem:
    """A problem object; `slug` names its type (None: `about:blank`, the status says it)."""
    body: Problem = {"type": TYPE_PREFIX + slug if slug else "about:blank", "title": title}
    if status is not None:
        body["status"] = status
    if detail:
        body["detail"] = detail
    body.update((key, value) for key, value in extensions.items() if value is not None)
    return body


def summary(errors: list[dict[str, str]]) -> str:
    """One sentence for the detail: the first error, and how many more there are."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['path'] + ': ' if first['path'] else ''}{first['message']}{more}"


def invalid_input(errors: list[dict[str, str]]) -> Problem:
    return problem("Invalid input", 422, summary(errors), "invalid-input", errors=errors)


def non_finite(exc: NumericError) -> Problem:
    """A graph whose value or gradient is not finite, naming the node."""
    return problem("Not a finite number", 422, str(exc), "non-finite", node=exc.node)


def diverged(exc: NumericError) -> Problem:
    """A training job whose loss became non-finite, naming the step."""
    return problem("Training diverged", None, str(exc), "diverged", step=exc.step)


def crashed(what: str = "job") -> Problem:
    """Whatever else stopped a job: the worker's log has the traceback."""
    return problem(
        f"The {what} failed", None, f"an internal error stopped the {what}", "internal-error"
    )


def timeout(seconds: float) -> Problem:
    """A job that trained past its `timeout` (all its runs together), naming it."""
    return problem(
        "The job timed out",
        None,
        f"the job trained past its timeout of {seconds:g} s",
        "timeout",
        timeout=seconds,
    )


def worker_lost(times: int) -> Problem:
    """A job whose worker died again and again before it could checkpoint."""
    return problem(
        "The job's worker was lost",
        None,
        f"the worker running the job stopped (killed, or out of memory) {times} times in a "
        "row before the job could save a new checkpoint; it is not run again",
        "worker-lost",
    )
