"""Who is asking: every `/v1` request carries an API key as a bearer token (RFC 6750),
checked here, once, before any route runs; the route finds the key's tenant in `tenant()`,
the rate limiter the key's id in `flask.g.key_id`.

Without a valid key the answer is 401 problem+json with `WWW-Authenticate: Bearer` (and
`error="invalid_token"` when a key was sent but is not valid: malformed, unknown, wrong or
revoked, all alike), given by a hook of its own (`register_refusal`) once the rate limiter
has counted the refused request against the client's address. Everything outside `/v1`
(health, the OpenAPI document, the docs pages and their assets) needs no key. With AUTH
off, every request is tenant `local`'s."""

from functools import partial
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask, Response, g, request
from flask_smorest.utils import prepare_response

from schemas import ProblemSchema

from .. import problems
from ..config import auth_enabled
from ..store import LOCAL_TENANT, ApiKeys
from .boundary import PROBLEM_JSON, problem_response
from .handover import handed_over

PROTECTED = "/v1"
"""The path prefix that needs a key."""

SCHEME = "apiKey"
"""The security scheme's name in the OpenAPI document."""

CHALLENGE = 'Bearer realm="gradserve"'


def tenant() -> str:
    """The tenant the current request acts for."""
    return g.tenant


def protected(path: str) -> bool:
    return path == PROTECTED or path.startswith(PROTECTED + "/")


def protected_operations(path: str | None, operations: dict | None) -> list[dict]:
    """The OpenAPI operations of `path` if it is under /v1 (for apispec plugins)."""
    if path is None or not protected(path):
        return []
    return list((operations or {}).values())


def refused() -> bool:
    """Was the current request's key refused (its 401 still to come)?"""
    return "refusal" in g


def register(app: Flask, keys: ApiKeys) -> None:
    """Check every /v1 request's key (or, with AUTH off, serve it as tenant `local`)."""
    if auth_enabled(app.config["AUTH"]):
        app.before_request(partial(_check_key, keys))
    else:
        app.before_request(_serve_as_local)


def register_refusal(app: Flask) -> None:
    """Answer a refused key's request with its 401: register after the rate limiter, whose
    hook must see (and count) the refused request first."""
    app.before_request(_refuse)


def _check_key(keys: ApiKeys) -> None:
    if not protected(request.path):
        return
    handover = handed_over()
    if handover is not None:  # the hot path checked the key
        g.tenant, g.key_id = handover.tenant, handover.key_id
        return
    given, token = bearer(request.headers.get("Authorization"))
    if given is None:
        g.refusal = unauthorized(key_given=False)
        return
    # One path for every refusal: authenticate hashes and compares whatever it is given.
    found = keys.authenticate(token)
    if found is None:
        g.refusal = unauthorized(key_given=given)
        return
    g.tenant, g.key_id = found, keys.key_id(token)


def bearer(header: str | None) -> tuple[bool | None, str]:
    """An Authorization header read: (None: no header, False: not a bearer token, True:
    one), and the token ("" when it is not a bearer's)."""
    if header is None:
        return None, ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 9110)
        return False, ""
    return True, token.lstrip(" ")  # 1*SP (RFC 6750)


def _refuse() -> Response | None:
    return g.pop("refusal", None)


def _serve_as_local() -> None:
    g.tenant, g.key_id = LOCAL_TENANT, None


def unauthorized(key_given: bool) -> Response:
    if key_given:
        challenge = f'{CHALLENGE}, error="invalid_token"'
        detail = "the API key is not valid (malformed, unknown or revoked)"
    else:
        challenge = CHALLENGE
        detail = "this endpoint needs an API key: send `Authorization: Bearer <key>`"
    body = problems.problem("Unauthorized", 401, detail, "unauthorized")
    return problem_response(body, {"WWW-Authenticate": challenge})


class SecurityPlugin(BasePlugin):
    """The OpenAPI document's side: the bearer scheme, and on every /v1 operation that it
    needs it and may answer 401."""

    RESPONSE = "UNAUTHENTICATED"

    def init_spec(self, spec: APISpec) -> None:
        spec.components.security_scheme(
            SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "gs_<key id>_<secret>",
                "description": "An API key, sent as `Authorization: Bearer <key>` on every "
                "/v1 request. `python -m service.keys create --tenant NAME` makes one; "
                "`make run` writes one for tenant `local` to var/api-key.",
            },
        )
        response: dict[str, Any] = {
            "description": "No API key, or one that is not valid (malformed, unknown or revoked).",
            "schema": ProblemSchema,
            "headers": {
                "WWW-Authenticate": {
                    "description": '`Bearer realm="gradserve"`, with `error="invalid_token"` '
                    "when a key was sent.",
                    "schema": {"type": "string"},
                }
            },
        }
        prepare_response(response, spec, PROBLEM_JSON)
        spec.components.response(self.RESPONSE, response)

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for operation in protected_operations(path, operations):
            operation.setdefault("security", [{SCHEME: []}])
            operation.setdefault("responses", {}).setdefault(401, self.RESPONSE)
