"""The web console at `/`: server-rendered page shells (one template per resource) and the
static files they load, all served by the API itself.

The shells hold no data and need no key; their JavaScript asks /v1 for everything with the
key the user typed, kept in the tab's sessionStorage. The pages' Content-Security-Policy lets
the browser load and connect to this origin only (WebAssembly compilation is allowed for
Graphviz's viz.js)."""

import json

from flask import Blueprint, Response, render_template, request

from engine.spec import DEMO_SPEC

STATIC_URL_PATH = "/console-assets"
"""Where the console's own scripts and styles and its vendored libraries are served."""

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""The pages' Content-Security-Policy: same origin only, no inline script; viz.js compiles
its WebAssembly from bytes (`wasm-unsafe-eval`), nothing is eval'd."""

blueprint = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path=STATIC_URL_PATH,
)


def page(template: str, **context: object) -> Response:
    response = Response(render_template(template, **context), mimetype="text/html")
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/")
def jobs() -> Response:
    status = request.args.get("status", "")  # the filter the page opens with
    return page("jobs.html", demo_spec=json.dumps(DEMO_SPEC, indent=2), status=status)


@blueprint.get("/jobs/<job_id>")
def job(job_id: str) -> Response:
    return page("job.html", job_id=job_id)


@blueprint.get("/models/<model_id>")
def model(model_id: str) -> Response:
    return page("model.html", model_id=model_id)


@blueprint.get("/graphs")
@blueprint.get("/graphs/<graph_id>")
def graphs(graph_id: str = "") -> Response:
    return page("graphs.html", graph_id=graph_id)
