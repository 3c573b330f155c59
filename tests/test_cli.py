"""The `gradserve` command as installed (.venv/bin/gradserve, the client's entry point), run
as a subprocess against the real API under gunicorn with real workers."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.stack import redis_server

from .service_helpers import EXAMPLES, MICROGRAD_FIGURES, small_spec, wait_until

pytestmark = pytest.mark.e2e
GRADSERVE = Path(sys.executable).parent / "gradserve"


@pytest.fixture(scope="module")
def env(stack, api):
    key = api.headers["Authorization"].removeprefix("Bearer ")
    return {**os.environ, "GRADSERVE_URL": stack, "GRADSERVE_API_KEY": key}


def gradserve(env, *args, cwd=None, timeout=120):
    return subprocess.run(
        [str(GRADSERVE), *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(run):
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(small_spec(steps=40)))
    return path


def test_submit_then_show_history_predict_and_list(env, spec_file, tmp_path):
    job = json.loads(ok(gradserve(env, "submit", spec_file)))
    assert job["status"] == "queued" and job["spec"]["steps"] == 40
    shown = json.loads(ok(gradserve(env, "jobs", "show", job["id"])))
    assert shown["id"] == job["id"]
    cancelled = gradserve(env, "cancel", job["id"])  # cancelled, or finished already (409)
    assert cancelled.returncode in (0, 1)
    done = json.loads(ok(gradserve(env, "submit", spec_file)))
    listed = json.loads(ok(gradserve(env, "jobs", "list", "--limit", "1")))
    assert listed["items"][0]["id"] == done["id"] and listed["next_cursor"]


def test_history_as_csv_and_predict(env, tmp_path, api):
    job = api.post("/v1/jobs", json=small_spec(steps=7)).json()
    wait_until(lambda: api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded", 60)
    rows = list(csv.reader(io.StringIO(ok(gradserve(env, "history", job["id"], "--csv")))))
    assert rows[0] == ["step", "loss", "accuracy"] and [r[0] for r in rows[1:]] == [
        str(i) for i in range(7)
    ]
    history = api.get(f"/v1/jobs/{job['id']}/history").json()
    assert [float(r[1]) for r in rows[1:]] == history["loss"]  # every digit kept
    assert json.loads(ok(gradserve(env, "history", job["id"])))["loss"] == history["loss"]
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    x = tmp_path / "x.json"
    x.write_text("[[1.0, -0.5], [0.0, 0.25]]")
    predicted = json.loads(ok(gradserve(env, "predict", model_id, x)))
    expected = api.post(f"/v1/models/{model_id}/predict", json={"x": json.loads(x.read_text())})
    assert predicted == expected.json()
    ok(gradserve(env, "delete", job["id"]))
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_graph_eval_as_json_and_as_dot(env):
    graph = EXAMPLES / "micrograd_graph.json"
    evaluated = json.loads(ok(gradserve(env, "graph", "eval", graph)))
    assert evaluated["result"]["grads"]["b"] == pytest.approx(MICROGRAD_FIGURES["b"], abs=1e-4)
    drawn = ok(gradserve(env, "graph", "eval", graph, "--dot"))
    assert drawn.startswith("digraph") and "138.8338" in drawn


def test_graph_eval_dot_waits_for_a_queued_graph_and_says_why_one_failed(env, tmp_path):
    """Over GRAPH_INLINE_MAX_NODES (20,000) a graph is queued: --dot waits for it, then
    draws it; one that fails has no picture: its problem, exit 4."""
    count = 20_001
    nodes = [{"id": "x0", "op": "input", "value": 0.5}]
    nodes += [{"id": f"x{i}", "op": "tanh", "inputs": [f"x{i - 1}"]} for i in range(1, count)]
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"nodes": nodes}))
    drawn = ok(gradserve(env, "graph", "eval", chain, "--dot"))
    assert drawn.startswith("digraph") and f"x{count - 1}" in drawn and f"of {count}" in drawn
    nodes[0]["value"] = 0.0  # tanh keeps 0: the log at the end is of 0
    nodes.append({"id": "log", "op": "log", "inputs": [f"x{count - 1}"]})
    chain.write_text(json.dumps({"nodes": nodes}))
    run = gradserve(env, "graph", "eval", chain, "--dot")
    assert run.returncode == 4, run.stderr
    assert json.loads(run.stdout)["status"] == "failed" and "log" in run.stderr


def test_an_api_error_prints_the_problem_and_exits_1(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": 0, "loss": "nope"}))
    run = gradserve(env, "submit", bad)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[0] == "gradserve: Invalid input (422)"
    assert {"  steps: must be an integer of at least 1"} <= set(lines)
    assert any(line.startswith("  loss: ") for line in lines)
    missing = gradserve(env, "jobs", "show", "0123456789abcdef0123456789abcdef")
    assert missing.returncode == 1 and "Not found (404)" in missing.stderr


def test_usage_errors_exit_2_and_an_unreachable_api_3(env, tmp_path):
    assert gradserve(env, "submit").returncode == 2  # argparse: a missing argument
    run = gradserve(env, "submit", tmp_path / "absent.json")
    assert run.returncode == 2 and "cannot read" in run.stderr
    (tmp_path / "text.json").write_text("not json")
    assert gradserve(env, "predict", "m", tmp_path / "text.json").returncode == 2
    assert gradserve(env, "jobs", "list", "--metadata", "novalue").returncode == 2
    nobody = f"http://127.0.0.1:{redis_server.free_port()}"
    run = gradserve({**env, "GRADSERVE_URL": nobody}, "jobs", "list")
    assert run.returncode == 3 and "Connection refused" in run.stderr


def test_the_key_comes_from_var_api_key_without_the_variable(env, tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api-key").write_text(env["GRADSERVE_API_KEY"] + "\n")
    without = {k: v for k, v in env.items() if k != "GRADSERVE_API_KEY"}
    assert "items" in json.loads(ok(gradserve(without, "jobs", "list", cwd=tmp_path)))
    run = gradserve(without, "jobs", "list", cwd=tmp_path.parent)  # no key anywhere
    assert run.returncode == 1 and "(401)" in run.stderr


def test_submit_wait_draws_progress_and_prints_the_finished_job(env, tmp_path, api):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(small_spec(steps=2000)))
    run = gradserve(env, "submit", spec, "--wait", "--metadata", "run=cli-wait")
    job = json.loads(ok(run))
    assert job["status"] == "succeeded" and job["model_id"]
    assert job["metadata"] == {"run": "cli-wait"}
    assert run.stderr.startswith(f"gradserve: job {job['id']} queued")
    bars = run.stderr.replace("\r", "\n").splitlines()
    final = [line for line in bars if "2000/2000" in line]
    assert final and "succeeded" in final[-1] and "loss=" in final[-1]
    last_loss = api.get(f"/v1/jobs/{job['id']}/history?since=1999").json()["loss"][-1]
    assert f"loss={last_loss:.4g}" in final[-1]
    assert len({line for line in bars if "/2000" in line}) > 1  # drawn as it went
    listed = json.loads(ok(gradserve(env, "jobs", "list", "--metadata", "run=cli-wait", "--all")))
    assert [j["id"] for j in listed] == [job["id"]]
    succeeded = gradserve(
        env, "jobs", "list", "--status", "succeeded", "--metadata", "run=cli-wait"
    )
    assert [j["id"] for j in json.loads(ok(succeeded))["items"]] == [job["id"]]


def test_submit_wait_of_a_job_that_fails_exits_4_with_its_problem(env, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(small_spec(loss="mse", optimizer={"name": "sgd", "learning_rate": 1e300}))
    )
    run = gradserve(env, "submit", spec, "--wait")
    assert run.returncode == 4
    assert json.loads(run.stdout)["status"] == "failed"
    assert "failed" in run.stderr and "step" in run.stderr.lower()
