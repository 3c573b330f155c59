"""/docs (Swagger UI) and /redoc (ReDoc) work with no internet: their HTML names no other
host, and every asset it names is served by the API itself."""

import re
from html.parser import HTMLParser
from pathlib import PurePosixPath
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from service.api.docs_assets import SAME_ORIGIN_ONLY

PAGES = ["/docs", "/redoc"]
CONTENT_TYPES = {  # .js: Python before 3.12 (and some mime.types files) say application/
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".json": {"application/json"},
}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
ABSOLUTE_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*:)?//[^\s'\"<>)]+", re.I)
QUOTED_PATH = re.compile(r"['\"](/[^'\"\s]*)['\"]")


class References(HTMLParser):
    """Every URL a page names: its tags' src, href and *url attributes, url(...) in styles,
    and in inline scripts anything with // and every quoted absolute path."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in ("src", "href", "action") or name.endswith("url")):
                self.urls.append(value)
            if name == "style" and value:
                self.urls += CSS_URL.findall(value)
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.urls += CSS_URL.findall(data)
        elif self._in == "script":
            self.urls += ABSOLUTE_URL.findall(data) + QUOTED_PATH.findall(data)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    parser.close()
    return parser.urls


def is_local(url: str) -> bool:
    """A URL of this same origin: no scheme (data: aside) and no host."""
    parts = urlsplit(url)
    return parts.scheme in ("", "data") and not parts.netloc


def sensible_type(url: str, content_type: str) -> bool:
    suffix = PurePosixPath(urlsplit(url).path).suffix
    return content_type.split(";")[0].strip() in CONTENT_TYPES[suffix]


def test_the_reference_finder_sees_every_kind_of_reference():
    html = """<link href="https://cdn.example/a.css"><script src="//cdn.example/b.js"></script>
    <style>body { background: url('http://fonts.example/f.woff') }</style>
    <div style="background: url(https://img.example/x.png)"></div>
    <script>load("https://api.example/c"); config = {url: "/openapi.json"}</script>
    <redoc spec-url="/openapi.json"></redoc>"""
    found = references(html)
    assert [url for url in found if not is_local(url)] == [
        "https://cdn.example/a.css",
        "//cdn.example/b.js",
        "http://fonts.example/f.woff",
        "https://img.example/x.png",
        "https://api.example/c",
    ]
    assert found.count("/openapi.json") == 2


@pytest.mark.parametrize("page", PAGES)
def test_a_docs_page_names_no_other_host_and_the_api_serves_all_it_names(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == SAME_ORIGIN_ONLY
    urls = references(response.get_data(as_text=True))
    assert urls, "the page loads its viewer"
    assert all(is_local(url) for url in urls), urls
    for url in {urljoin(page, url) for url in urls if not url.startswith("data:")}:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert sensible_type(url, asset.content_type), (url, asset.content_type)
        if url.endswith(".css"):  # a stylesheet could pull a font or an image
            assert all(is_local(u) for u in CSS_URL.findall(asset.get_data(as_text=True)))


def test_the_swagger_page_asks_no_online_validator(client):
    assert "validatorUrl" in client.get("/docs").get_data(as_text=True)
    assert client.application.config["OPENAPI_SWAGGER_UI_CONFIG"]["validatorUrl"] is None


def test_an_asset_that_is_not_there_is_a_problem_404(client):
    response = client.get("/docs-assets/swagger-ui/nothing.js")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.e2e
@pytest.mark.parametrize("page", PAGES)
def test_under_gunicorn_a_docs_page_and_its_assets_are_served_locally(stack, page):
    response = requests.get(f"{stack}{page}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    urls = references(response.text)
    assert urls and all(is_local(url) for url in urls), urls
    for url in {urljoin(page, url) for url in urls if not url.startswith("data:")}:
        asset = requests.get(f"{stack}{url}", timeout=10)
        assert asset.status_code == 200, url
        assert sensible_type(url, asset.headers["Content-Type"]), url
        assert asset.content, url
