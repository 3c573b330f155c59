"""The application factory."""

from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..config import load_config
from ..store import GraphStore, JobStore
from ..store.queue import connect, make_queue
from . import boundary, compression, docs_assets
from .body import BoundedRequest
from .concurrency import heavy_slots, release_heavy_slot
from .extensions import Services
from .jsonprovider import StrictJSONProvider
from .routes import graphs, health, jobs, models
from .smorest import Api


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The API: defaults from service.settings, then the environment (GRADSERVE_*,
    REDIS_URL), then `config`. Nothing connects before the first request."""
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = StrictJSONProvider(app)
    app.config.update(load_config(config))
    connection = connect(app.config["REDIS_URL"], app.config["REDIS_SOCKET_TIMEOUT"])
    bulk = connect(app.config["REDIS_URL"], app.config["REDIS_BULK_TIMEOUT"])
    app.extensions["gradserve"] = Services(
        store=JobStore(connection),
        graphs=GraphStore(connection, bulk=bulk),
        queue=make_queue(connection, app.config),
        readiness=connect(app.config["REDIS_URL"], app.config["READINESS_TIMEOUT"]),
        heavy=heavy_slots(app.config["HEAVY_REQUESTS"]),
    )
    api = Api(app)
    for blueprint in (graphs.blp, jobs.blp, models.blp, health.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(docs_assets.blueprint)
    boundary.register(app)
    compression.register(app)
    app.teardown_request(release_heavy_slot)
    return app
