"""The application factory."""

from collections.abc import Mapping
from functools import partial
from typing import Any

from flask import Flask

from ..config import auth_enabled, load_config
from ..store import ApiKeys, GraphStore, JobStore, WebhookSecrets
from ..store.deliveries import WebhookDeliveries
from ..store.queue import connect, connect_subscriber, make_queue
from . import (
    auth,
    boundary,
    compression,
    console,
    docs_assets,
    hotpath,
    metrics,
    openapi,
    ratelimit,
)
from .body import BoundedRequest
from .concurrency import heavy_slots, release_heavy_slot
from .extensions import Services
from .jsonprovider import StrictJSONProvider
from .notifier import Notifier
from .routes import graphs, health, jobs, models, webhooks
from .smorest import Api


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The API: defaults from service.settings, then the environment (GRADSERVE_*,
    REDIS_URL), then `config`. Nothing connects before the first request."""
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = StrictJSONProvider(app)
    app.config.update(load_config(config))
    url, most = app.config["REDIS_URL"], app.config["REDIS_MAX_CONNECTIONS"]
    connection = connect(url, app.config["REDIS_SOCKET_TIMEOUT"], max_connections=most)
    retention = app.config["RETENTION_DAYS"]
    bulk = connect(url, app.config["REDIS_BULK_TIMEOUT"], max_connections=most)
    store = JobStore(connection, retention_days=retention)
    app.extensions["gradserve"] = services = Services(
        store=store,
        graphs=GraphStore(connection, retention_days=retention, bulk=bulk),
        queue=make_queue(connection, app.config),
        keys=ApiKeys(connection, cache_seconds=app.config["KEY_CACHE_SECONDS"]),
        webhooks=WebhookSecrets(connection),
        deliveries=WebhookDeliveries(connection),
        readiness=connect(url, app.config["READINESS_TIMEOUT"], max_connections=most),
        heavy=heavy_slots(app.config["HEAVY_REQUESTS"]),
        notifier=Notifier(
            partial(connect_subscriber, app.config["REDIS_URL"]),
            store.keys.changes_channel(),
            app.config["NOTIFY_RECHECK"],
        ),
    )
    auth.register(app, services.keys)  # who asks (a key's tenant and id), or a refusal
    limiter = ratelimit.register(app, services)  # counts the request, the refused ones too
    auth.register_refusal(app)  # then a refused key's 401
    plugins = [auth.SecurityPlugin(), ratelimit.OpenApiPlugin(), openapi.OperationIds()]
    api = Api(app, spec_kwargs={"extra_plugins": plugins})
    for blueprint in (graphs.blp, jobs.blp, models.blp, webhooks.blp, health.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(docs_assets.blueprint)
    app.register_blueprint(console.blueprint)
    boundary.register(app)
    compression.register(app)
    app.teardown_request(release_heavy_slot)
    hotpath.register(app, services, limiter, auth_enabled(app.config["AUTH"]))  # below Flask
    metrics.register(app, services)  # a middleware around it all, and GET /metrics
    metrics.document(app, api.spec)
    return app
