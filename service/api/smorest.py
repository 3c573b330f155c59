"""flask-smorest, fitted to gradserve: problem+json errors (also in the OpenAPI
document), strict JSON request bodies, 415 for bodies that are not JSON."""

import http
from typing import Any

import flask_smorest
from flask import Request, current_app
from flask_smorest.utils import prepare_response
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

from engine.value import paused_gc
from schemas import ProblemSchema

from . import boundary
from .concurrency import run_cpu_bound
from .jsonbody import Vouch, load_body


def parse_body(data: bytes, max_depth: int, max_digits: int, vouch: Vouch | None = None) -> Any:
    with paused_gc():  # parsed JSON has no cycles; 500,000 nodes parse 3x as fast
        return load_body(data, max_depth, max_digits, vouch)


class JsonBodyParser(FlaskParser):
    """Bodies must say they are JSON (else 415) and be strict JSON within the limits of
    api/jsonbody.py (else 400)."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            raise UnsupportedMediaType(
                f"the body must be application/json, not {req.mimetype or 'untyped'}"
            )
        data = req.get_data(cache=True)
        config = current_app.config
        return run_cpu_bound(
            len(data),
            parse_body,
            data,
            config["MAX_JSON_DEPTH"],
            config["MAX_JSON_NUMBER_DIGITS"],
            self.vouch(),
        )

    def vouch(self) -> Vouch | None:
        """A route's vouch for bodies of its own shape (jsonbody.load_body); none here."""
        return None

    def load_json(self, req: Request, schema: Any) -> Any:
        data = super().load_json(req, schema)
        if data is core.missing:
            raise core.ValidationError("a JSON body is required")
        return data


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = JsonBodyParser()


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return boundary.from_http_exception(error)

    def _register_responses(self) -> None:
        """Document every error response as application/problem+json."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, boundary.PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, boundary.PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)
