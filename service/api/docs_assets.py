"""The docs pages' assets, served by the API itself: `/docs` (Swagger UI) and `/redoc`
(ReDoc) load nothing from another host, so they work with no internet.

The files are pinned, unchanged copies from npm (`api_docs_static/README.md` names the
versions); the pages are flask-smorest's, pointed here by `OPENAPI_SWAGGER_UI_URL` and
`OPENAPI_REDOC_URL` (service/settings.py)."""

from flask import Blueprint, Response, request

URL_PATH = "/docs-assets"
"""Where the files are served: `/docs-assets/swagger-ui/...`, `/docs-assets/redoc/...`."""

PAGES = {"api-docs.openapi_swagger_ui", "api-docs.openapi_redoc"}
"""flask-smorest's endpoints of the two pages."""

SAME_ORIGIN_ONLY = "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:"
"""The pages' Content-Security-Policy: the browser fetches nothing from another host (ReDoc's
sidebar would load Redocly's logo from a CDN). Inline code, eval, data: and blob: URLs stay
allowed: the bundles use them, and the point here is offline, not a sandbox."""

blueprint = Blueprint(
    "docs_assets", __name__, static_folder="api_docs_static", static_url_path=URL_PATH
)


@blueprint.after_app_request
def same_origin_only(response: Response) -> Response:
    if request.endpoint in PAGES:
        response.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
    return response
