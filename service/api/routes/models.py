"""Trained models and their predictions."""

from flask import current_app
from flask.views import MethodView

from engine.errors import NumericError
from engine.predict import predict
from schemas import ModelSchema, PredictRequestSchema, PredictResponseSchema

from ...errors import InvalidParameter, NotFound
from ..auth import tenant
from ..extensions import services
from ..smorest import Blueprint

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/v1/models",
    description="The networks that succeeded jobs trained.",
)


def existing_model(model_id: str) -> dict:
    model = services().store.get_model(model_id, tenant=tenant())
    if model is None:
        raise NotFound("model", model_id)
    return model


@blp.route("/<model_id>")
class Model(MethodView):
    @blp.response(200, ModelSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, model_id: str) -> dict:
        """A model: architecture, loss, parameters and final metrics."""
        return existing_model(model_id)

    @blp.response(204, description="Deleted.")
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, model_id: str) -> tuple[str, int]:
        """Delete a model (the job that trained it stays, its model_id naming a 404)."""
        if not services().store.delete_model(model_id, tenant=tenant()):  # checks the owner
            raise NotFound("model", model_id)
        return "", 204


@blp.route("/<model_id>/predict")
class Predict(MethodView):
    @blp.arguments(PredictRequestSchema, example={"x": [[0.5, -0.25], [1.0, 0.5]]})
    @blp.response(200, PredictResponseSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    def post(self, body: dict, model_id: str) -> dict:
        """The network's outputs for each row of x (and class probabilities for ce)."""
        model = existing_model(model_id)
        limit = current_app.config["MAX_PREDICT_ROWS"]
        if len(body["x"]) > limit:
            raise InvalidParameter("x", f"at most {limit} rows are allowed, not {len(body['x'])}")
        try:
            return predict(model, body["x"])
        except NumericError:
            raise
        except ValueError as exc:  # "x/3/1: must be a finite number, not 'a'"
            path, _, message = str(exc).partition(": ")
            raise InvalidParameter(path, message) from None
