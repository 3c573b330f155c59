"""The web console at `/`, in a real headless Chromium against the real API under gunicorn
and real workers: sign in, the moons demo trained from the page with its curve drawn live,
the decision boundary, the README graph drawn by viz.js, problems shown with their paths, no
request to any other host, screenshots (also 375 px wide) and page weights."""

import base64
import json
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from engine.data import load
from engine.spec import normalize_spec
from service.api.console import POLICY

from .browser import NetworkLog, install_chromium, start_chromium, wait_for
from .conftest import CONSOLE_FIGURES
from .service_helpers import long_spec, small_spec

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
PAGES = ["/", "/jobs/x", "/models/x", "/graphs", "/graphs/x"]
NARROW = 375  # px: a phone
WIDER_THAN_THE_WINDOW = """
const width = document.documentElement.clientWidth;
return [...document.querySelectorAll('body *')]
  .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > width + 0.5)
  .filter((e) => !e.parentElement.closest('.table-wrap, .drawing, pre'))  // scroll inside
  .map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className).slice(0, 5);
"""


# -- without a browser -------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_console_pages_need_no_key_and_load_only_from_this_origin(client, path):
    response = client.get(path, headers={"Authorization": ""})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == POLICY
    assert "default-src 'self'" in POLICY and "connect-src 'self'" in POLICY
    html = response.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html and "<script>" not in html


def test_console_assets_are_served_with_their_licenses(client):
    for path in (
        "/console-assets/console.js",
        "/console-assets/vendor/uplot/uPlot.iife.min.js",
        "/console-assets/vendor/uplot/LICENSE",
        "/console-assets/vendor/viz/viz-global.js",
        "/console-assets/vendor/viz/LICENSE",
        "/console-assets/vendor/viz/LICENSE-graphviz.txt",
    ):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path
        response.close()


def test_the_readme_example_the_console_offers_is_the_repositorys(client):
    served = client.get("/console-assets/micrograd_graph.json").get_json()
    assert served == json.loads((ROOT / "examples" / "micrograd_graph.json").read_text())


def test_generated_data_is_served_when_asked_for(client):
    spec = small_spec(loss="bce")
    job = client.post("/v1/jobs", json=spec).get_json()
    assert client.get(f"/v1/jobs/{job['id']}/data").status_code == 404  # as before
    served = client.get(f"/v1/jobs/{job['id']}/data?generated=true")
    x, y = load(normalize_spec(spec))
    data = {"x": x.tolist(), "y": y.tolist()}
    assert served.get_json() == data and set(data["y"]) == {0.0, 1.0}
    # canonical, as inline data is served: the standard library's text, byte for byte
    assert served.data == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    bad = client.get(f"/v1/jobs/{job['id']}/data?generated=maybe")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["path"] == "generated"


# -- in the browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    binary, driver = install_chromium()
    downloads = tmp_path_factory.mktemp("downloads")
    chromium = start_chromium(binary, driver, str(downloads))
    chromium.downloads = downloads
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    CONSOLE_FIGURES.append(f"screenshots: {SCREENSHOTS}")
    yield chromium
    chromium.quit()


@pytest.fixture(scope="session")
def network(browser):
    return NetworkLog(browser)


@pytest.fixture(scope="session")
def stack_key(stack_dir, stack):
    return (stack_dir / "api-key").read_text().strip()


@pytest.fixture(scope="session")
def signed_in(browser, stack, stack_key):
    """The browser on the console, signed in with the stack's key (tenant `local`)."""
    browser.get(stack + "/")
    content, form = browser.find_element(By.ID, "content"), browser.find_element(By.ID, "sign-in")
    wait_for(browser, lambda b: content.is_displayed() or form.is_displayed())
    if form.is_displayed():
        sign_in(browser, stack_key)
    wait_for(browser, lambda b: content.is_displayed())
    return stack


def sign_in(browser, key):
    field = wait_for(browser, lambda b: b.find_element(By.ID, "api-key"))
    field.clear()
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#sign-in-form button[type=submit]").click()


def shoot(browser, name):
    """A screenshot of the whole page, not only the window's part of it."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    # The whole page is laid out at the window's width (its scrollbar gone): clip to that.
    width = max(size["width"], browser.execute_script("return window.innerWidth"))
    clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def visible_text(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def test_a_wrong_key_is_refused_with_the_problem_and_the_key_is_never_in_the_url(
    browser, stack, stack_key
):
    browser.get(stack + "/")
    sign_in(browser, "gs_wrong_key")
    problem = wait_for(browser, lambda b: b.find_element(By.ID, "sign-in-problem"))
    wait_for(browser, lambda b: problem.is_displayed())
    assert "Unauthorized" in problem.text and "not valid" in problem.text
    shoot(browser, "sign-in-refused")
    sign_in(browser, stack_key)
    wait_for(browser, lambda b: b.find_element(By.ID, "content").is_displayed())
    assert stack_key not in browser.current_url
    stored = browser.execute_script("return [sessionStorage.length, localStorage.length]")
    assert stored == [1, 0]


def test_the_demo_submitted_from_the_page_draws_its_curve_to_100_points(browser, signed_in, api):
    browser.get(signed_in + "/")
    submit = wait_for(browser, lambda b: b.find_element(By.ID, "submit-job"))
    spec = json.loads(browser.find_element(By.ID, "spec").get_attribute("value"))
    assert spec["dataset"]["name"] == "moons" and spec["steps"] == 100
    shoot(browser, "jobs")
    submit.click()
    wait_for(browser, lambda b: "/jobs/" in b.current_url)
    job_id = browser.current_url.rsplit("/", 1)[1]
    curve = browser.find_element(By.ID, "curves")
    seen = []

    def grown(b):
        points = int(curve.get_attribute("data-points"))
        if not seen or seen[-1] != points:
            seen.append(points)
        return points == 100

    wait_for(browser, grown)
    drawn_at = int(curve.get_attribute("data-drawn-at")) / 1000
    assert seen == sorted(seen) and seen[-1] == 100  # it only grows
    wait_for(browser, lambda b: visible_text(b, "status") == "succeeded")
    job = api.get(f"/v1/jobs/{job_id}").json()
    finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()
    assert drawn_at >= finished - 1  # the same clock, give or take the page's rounding
    history = api.get(f"/v1/jobs/{job_id}/history").json()
    assert "100 steps drawn" in visible_text(browser, "curves-summary")
    assert f"{history['loss'][-1]:.4f}" in visible_text(browser, "curves-summary")
    assert browser.find_elements(By.CSS_SELECTOR, "#curves canvas")  # uPlot drew it
    shoot(browser, "job")
    browser.find_element(By.ID, "csv").click()
    csv = browser.downloads / f"job-{job_id}-history.csv"
    wait_for(browser, lambda b: csv.exists() and csv.read_text().count("\n") == 101)
    lines = [line.split(",") for line in csv.read_text().splitlines()]
    assert lines[0] == ["step", "loss", "accuracy"]
    assert [int(line[0]) for line in lines[1:]] == history["step"]
    assert [float(line[1]) for line in lines[1:]] == history["loss"]
    assert [float(line[2]) for line in lines[1:]] == history["accuracy"]
    browser.find_element(By.ID, "model-link").click()
    canvas = wait_for(browser, lambda b: b.find_element(By.ID, "boundary"))
    wait_for(browser, lambda b: canvas.get_attribute("data-drawn") == "100")
    colours = browser.execute_script(
        "const c = document.getElementById('boundary').getContext('2d');"
        "const d = c.getImageData(0, 0, c.canvas.width, c.canvas.height).data;"
        "const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97)"
        " seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]); return seen.size;"
    )
    assert colours > 3  # two shaded classes and the points, not a blank canvas
    assert "hinge" in visible_text(browser, "architecture")
    shoot(browser, "model")


def test_a_job_running_is_drawn_as_it_trains_and_can_be_cancelled_and_deleted(
    browser, signed_in, api
):
    job = api.post("/v1/jobs", json=long_spec()).json()
    browser.get(f"{signed_in}/jobs/{job['id']}")
    curve = wait_for(browser, lambda b: b.find_element(By.ID, "curves"))
    wait_for(browser, lambda b: int(curve.get_attribute("data-points")) > 0)
    first = int(curve.get_attribute("data-points"))
    wait_for(browser, lambda b: int(curve.get_attribute("data-points")) > first)  # live
    assert visible_text(browser, "status") == "running"
    browser.get(signed_in + "/")  # the list follows it too
    script = f"return document.querySelector('#job-{job['id']} progress')?.value"
    start = wait_for(browser, lambda b: b.execute_script(script))
    wait_for(browser, lambda b: b.execute_script(script) > start)  # the bar moves
    shoot(browser, "jobs-live")
    browser.get(f"{signed_in}/jobs/{job['id']}")
    button = wait_for(browser, lambda b: b.find_element(By.ID, "cancel"))
    wait_for(browser, lambda b: button.is_enabled())
    button.click()
    wait_for(browser, lambda b: visible_text(b, "status") == "cancelled")
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    browser.find_element(By.ID, "delete").click()
    wait_for(browser, lambda b: b.switch_to.alert).accept()
    wait_for(browser, lambda b: urlsplit(b.current_url).path == "/")
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_the_curve_shows_the_last_step_soon_after_it_is_trained(browser, signed_in, api, network):
    steps = 3000  # a few seconds of training: the page is open before the last step
    job = api.post("/v1/jobs", json=small_spec(steps=steps, dataset={"name": "moons"})).json()
    browser.get(f"{signed_in}/jobs/{job['id']}")
    curve = wait_for(browser, lambda b: b.find_element(By.ID, "curves"))
    wait_for(browser, lambda b: 0 < int(curve.get_attribute("data-points")))
    opened_at = time.time()
    wait_for(browser, lambda b: int(curve.get_attribute("data-points")) == steps)
    drawn_at = int(curve.get_attribute("data-drawn-at")) / 1000
    job = api.get(f"/v1/jobs/{job['id']}").json()
    finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")).timestamp()
    assert opened_at < finished, "the job ended before the page followed it: make it longer"
    delay_ms = (drawn_at - finished) * 1000
    CONSOLE_FIGURES.append(
        f"last training step to the curve showing it: {delay_ms:.0f} ms "
        f"(a {steps}-step job followed on its page; finished_at {job['finished_at']})"
    )
    assert delay_ms < 3000
    network.drain()
    assert any(url.endswith(f"/v1/jobs/{job['id']}/events") for url in network.urls)


def test_the_status_filter_lists_only_that_status(browser, signed_in, api):
    succeeded = wait_until_done(api, api.post("/v1/jobs", json=small_spec()).json()["id"])
    cancelled = api.post("/v1/jobs", json=long_spec()).json()["id"]
    assert api.post(f"/v1/jobs/{cancelled}/cancel").status_code == 200
    browser.get(signed_in + "/")
    wait_for(browser, lambda b: b.find_elements(By.ID, f"job-{succeeded['id']}"))
    Select(wait_for(browser, lambda b: b.find_element(By.ID, "status-filter"))).select_by_value(
        "cancelled"
    )
    wait_for(browser, lambda b: "status=cancelled" in b.current_url)
    rows = "return [...document.querySelectorAll('#jobs tr')].map((r) => [r.id, r.dataset.status])"

    def filtered(b):  # the unfiltered list may show first: wait for the filtered one
        shown = dict(b.execute_script(rows))
        return f"job-{cancelled}" in shown and set(shown.values()) == {"cancelled"}

    wait_for(browser, filtered)


def test_the_readme_graph_is_drawn_with_every_value_and_gradient(browser, signed_in):
    browser.get(signed_in + "/graphs")
    wait_for(browser, lambda b: b.find_element(By.ID, "example")).click()
    document = browser.find_element(By.ID, "graph-document")
    wait_for(browser, lambda b: '"graph/1"' in document.get_attribute("value"))
    browser.find_element(By.ID, "evaluate").click()
    drawing = wait_for(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#drawing svg"))
    nodes = {}
    for node in drawing.find_elements(By.CSS_SELECTOR, "g.node"):
        texts = [t.get_attribute("textContent") for t in node.find_elements(By.TAG_NAME, "text")]
        if texts:
            nodes[texts[0]] = texts
    assert "grad 138.8338" in nodes["a"] and "data -4.0000" in nodes["a"]
    assert "grad 645.5773" in nodes["b"] and "data 24.7041" in nodes["g"]
    assert "Output g = 24.7041" in visible_text(browser, "graph-summary")
    assert "/graphs/" in browser.current_url
    shoot(browser, "graph")
    pane = browser.find_element(By.ID, "drawing")
    before = drawing.get_dom_attribute("viewBox")
    browser.find_element(By.ID, "zoom-in").click()
    assert drawing.get_dom_attribute("viewBox") != before
    browser.find_element(By.ID, "zoom-fit").click()
    assert drawing.get_dom_attribute("viewBox") == pane.get_attribute("data-whole")
    pane.send_keys("+")  # the keyboard zooms too
    assert drawing.get_dom_attribute("viewBox") != pane.get_attribute("data-whole")
    pane.send_keys("0")
    assert drawing.get_dom_attribute("viewBox") == pane.get_attribute("data-whole")
    first = pane.get_attribute("data-drawn")
    browser.find_element(By.ID, "evaluate").click()  # again: a new graph, the same worker
    wait_for(browser, lambda b: pane.get_attribute("data-drawn") not in (None, first))
    workers = (
        "return performance.getEntriesByType('resource')"
        ".filter((e) => e.name.endsWith('/layout-worker.js')).length"
    )
    assert browser.execute_script(workers) == 1  # viz.js loaded once for both drawings
    browser.get(browser.current_url)  # the graph's own address draws it again
    wait_for(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#drawing svg"))


def upload_and_evaluate(browser, signed_in, upload, nodes):
    """On the graphs page, upload a document of `nodes` as the file `upload` and evaluate it
    once the page has it (shown in the box, or named there when too large to show)."""
    upload.write_text(json.dumps({"nodes": nodes}))
    browser.get(signed_in + "/graphs")
    wait_for(browser, lambda b: b.find_element(By.ID, "graph-file")).send_keys(str(upload))
    document = browser.find_element(By.ID, "graph-document")
    wait_for(
        browser,
        lambda b: (
            upload.name in document.get_attribute("placeholder") or document.get_attribute("value")
        ),
    )
    browser.find_element(By.ID, "evaluate").click()


def test_a_large_graph_is_queued_waited_for_and_drawn_cut_down(
    browser, network, signed_in, tmp_path, api
):
    """Over GRAPH_INLINE_MAX_NODES (20,000) a graph is evaluated on a worker: the page waits
    for it (`Prefer: wait`, no polling), then draws the DOT export's 200 nodes nearest the
    output, with its note. It reads the result's summary only (`Prefer: return=minimal`),
    never every node's value and gradient, on the way and when the graph's page is opened
    again."""
    count = 20_001
    nodes = [{"id": "x0", "op": "input", "value": 0.5}]
    nodes += [{"id": f"x{i}", "op": "tanh", "inputs": [f"x{i - 1}"]} for i in range(1, count)]
    network.reset_bytes()
    upload_and_evaluate(browser, signed_in, tmp_path / "chain.json", nodes)
    drawing = wait_for(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#drawing svg"))
    text = drawing.get_attribute("textContent")
    assert f"of {count}" in text and f"x{count - 1}" in text
    assert len(drawing.find_elements(By.CSS_SELECTOR, "g.node")) < 500  # cut down
    assert f"{count} nodes" in visible_text(browser, "graph-summary")
    shoot(browser, "graph-large")
    browser.get(browser.current_url)  # the graph's own page
    wait_for(browser, lambda b: f"{count} nodes" in visible_text(b, "graph-summary"))
    graph_id = browser.current_url.rsplit("/", 1)[-1]
    whole = api.get(f"/v1/graphs/{graph_id}", headers={"Accept-Encoding": "gzip"})
    assert len(whole.json()["result"]["values"]) == count
    read = network.bytes_from(f"/v1/graphs/{graph_id}")
    # The POST was held until the graph was evaluated (Prefer: wait): no poll, then the DOT;
    # the page opened again read the graph and its DOT.
    assert len(read) == 3, read
    assert max(read) < int(whole.headers["Content-Length"]) / 4, (read, whole.headers)


def test_the_page_answers_while_a_slow_graph_is_laid_out(browser, signed_in, tmp_path):
    """Graphviz lays the drawing out in a worker: a graph whose layout takes long (here a
    hub: 300 nodes each taking the one input) never blocks the page, which ends up drawing
    it or saying it was too slow to."""
    nodes = [{"id": "x", "op": "input", "value": 0.5}, {"id": "s0", "op": "tanh", "inputs": ["x"]}]
    nodes += [{"id": f"s{i}", "op": "add", "inputs": ["x", f"s{i - 1}"]} for i in range(1, 300)]
    upload_and_evaluate(browser, signed_in, tmp_path / "hub.json", nodes)
    slowest, started = 0.0, time.monotonic()
    while not browser.find_elements(By.CSS_SELECTOR, "#drawing svg, #graph-problem:not([hidden])"):
        asked = time.monotonic()
        assert browser.execute_script("return 6 * 7") == 42  # the page's thread answers
        slowest = max(slowest, time.monotonic() - asked)
        assert time.monotonic() - started < 60
        time.sleep(0.2)
    assert slowest < 1.0, f"the page took {slowest:.2f} s to answer while laying out"
    drawn = browser.find_elements(By.CSS_SELECTOR, "#drawing svg")
    if not drawn:
        assert "Too slow to draw" in visible_text(browser, "graph-problem")
    # the next graph is drawn (by a new worker if the last one was ended)
    browser.find_element(By.ID, "example").click()
    document = browser.find_element(By.ID, "graph-document")
    wait_for(browser, lambda b: '"graph/1"' in document.get_attribute("value"))
    browser.find_element(By.ID, "evaluate").click()
    wait_for(browser, lambda b: "Output g = 24.7041" in visible_text(b, "graph-summary"))
    CONSOLE_FIGURES.append(
        f"a 300-node hub graph: {'drawn' if drawn else 'given up'} after "
        f"{time.monotonic() - started:.1f} s; the page answered within {slowest * 1000:.0f} ms"
    )


def test_a_bad_graph_shows_the_problem_with_its_path(browser, signed_in):
    browser.get(signed_in + "/graphs")
    document = wait_for(browser, lambda b: b.find_element(By.ID, "graph-document"))
    bad = {
        "nodes": [{"id": "a", "op": "input", "value": 1}, {"id": "b", "op": "neg", "inputs": ["q"]}]
    }
    document.send_keys(json.dumps(bad))
    browser.find_element(By.ID, "evaluate").click()
    problem = browser.find_element(By.ID, "graph-problem")
    wait_for(browser, lambda b: problem.is_displayed())
    assert "nodes/1/inputs/0" in problem.text and "q" in problem.text
    assert problem.find_element(By.CLASS_NAME, "problem-title").text
    with pytest.raises(NoSuchElementException):
        browser.find_element(By.CSS_SELECTOR, "#drawing svg")
    shoot(browser, "graph-problem")


def test_every_page_is_readable_375_px_wide(browser, signed_in, api):
    job = wait_until_done(api, api.post("/v1/jobs", json=small_spec()).json()["id"])
    pages = {
        "jobs": "/",
        "job": f"/jobs/{job['id']}",
        "model": f"/models/{job['model_id']}",
        "graphs": "/graphs",
    }
    browser.set_window_size(NARROW, 800)
    try:
        for name, path in pages.items():
            browser.get(signed_in + path)
            wait_for(browser, lambda b: b.find_element(By.ID, "content").is_displayed())
            offenders = browser.execute_script(WIDER_THAN_THE_WINDOW)
            assert not offenders, f"{path}: {offenders} reach past the window's right edge"
            shoot(browser, f"{name}-375px")
    finally:
        browser.set_window_size(1280, 900)


def test_page_weights_cold_and_no_request_to_another_host(browser, signed_in, network, api):
    """Runs last in this module: the network log holds every request the tests made."""
    job = wait_until_done(api, api.post("/v1/jobs", json=small_spec()).json()["id"])
    pages = {
        "jobs": ("/", "#jobs tr"),
        "job": (f"/jobs/{job['id']}", "#curves:not([data-points='0'])"),
        "model": (f"/models/{job['model_id']}", "#boundary[data-drawn]"),
        "graphs": ("/graphs", "#graph-document"),
    }
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        for name, (path, ready) in pages.items():
            network.reset_bytes()
            browser.get(signed_in + path)
            wait_for(browser, lambda b, css=ready: b.find_elements(By.CSS_SELECTOR, css))
            wait_for(
                browser, lambda b: b.execute_script("return document.readyState == 'complete'")
            )
            sizes = network.bytes_by_url()
            total = sum(sizes.values())
            api_bytes = sum(size for url, size in sizes.items() if "/v1/" in url)
            CONSOLE_FIGURES.append(
                f"page weight, cold, {name}: {total:,} bytes in {len(sizes)} responses "
                f"({api_bytes:,} of them /v1 data)"
            )
            assert total > 0
    finally:
        browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    network.drain()
    origin = urlsplit(signed_in).netloc
    web = [url for url in network.urls if urlsplit(url).scheme in ("http", "https")]
    hosts = {urlsplit(url).netloc for url in web}
    assert hosts == {origin}, hosts
    others = {urlsplit(url).scheme for url in network.urls} - {"http", "data", "blob"}
    assert not others, others
    assert any("/console-assets/layout-worker.js" in url for url in network.urls)
    errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not errors, errors


def test_sign_out_forgets_the_key(browser, signed_in, stack_key):
    browser.get(signed_in + "/")
    button = browser.find_element(By.ID, "sign-out")
    wait_for(browser, lambda b: button.is_displayed())
    button.click()
    wait_for(browser, lambda b: b.find_element(By.ID, "sign-in").is_displayed())
    assert browser.execute_script("return sessionStorage.length") == 0
    sign_in(browser, stack_key)  # as it was, for any test after this one
    wait_for(browser, lambda b: b.find_element(By.ID, "content").is_displayed())


def wait_until_done(api, job_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=5"}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def test_requests_from_the_browser_never_carry_the_key_in_a_url(network, stack_key):
    network.drain()
    assert network.urls and not [url for url in network.urls if stack_key in url]
    assert not [url for url in network.urls if requests.utils.quote(stack_key) in url]
