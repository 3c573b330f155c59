"""Liveness and readiness."""

import redis
from flask.views import MethodView

from schemas import HealthSchema, ReadinessSchema

from ... import problems
from ..boundary import problem_response, retry_after
from ..extensions import services
from ..smorest import Blueprint

blp = Blueprint("health", __name__, description="Liveness (no Redis) and readiness (Redis).")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, HealthSchema, description="The process serves requests.")
    def get(self) -> dict[str, str]:
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema, description="Redis answers.")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> object:
        try:
            services().readiness.ping()
        except (redis.RedisError, OSError) as exc:
            detail = f"Redis does not answer: {exc}"
            body = problems.problem("Not ready", 503, detail, "not-ready")
            return problem_response(body, retry_after())
        return {"status": "ready"}
