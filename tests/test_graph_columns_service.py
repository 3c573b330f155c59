"""A large graph through the service: validated into columns in the request, queued as its
packed columns, evaluated from them by the worker's job function, its result written from
arrays; the same result, errors and drawing as the dict path's."""

import json

import pytest

from bench.shapes import products_and_sum_tree
from engine import GraphError, evaluate, to_dot
from engine.columns import columns_of, is_packed, unpack
from engine.evaluate import COMPILED_FROM_NODES
from engine.graph import parse_graph
from service.store.keys import Keys
from service.worker import jobs
from tests.test_columns import same_columns

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def large():
    doc = products_and_sum_tree(80)  # 6,399 nodes
    assert len(doc["nodes"]) >= COMPILED_FROM_NODES
    return doc


def test_a_large_graph_is_queued_as_columns_and_gives_evaluates_result(
    client, redis_client, worker_env, large
):
    response = client.post("/v1/graphs", json=large, headers=ASYNC)
    assert response.status_code == 202
    graph_id = response.get_json()["id"]
    stored = redis_client.get(Keys().graph_doc(graph_id))
    assert is_packed(stored) and same_columns(unpack(stored), columns_of(large))
    jobs.evaluate_graph(graph_id)
    done = client.get(f"/v1/graphs/{graph_id}")
    body = json.loads(done.data)
    assert body["status"] == "succeeded"
    assert body["result"] == evaluate(large)  # every float to the last bit
    drawn = client.get(f"/v1/graphs/{graph_id}", headers={"Accept": "text/vnd.graphviz"})
    assert drawn.status_code == 200
    assert drawn.get_data(as_text=True) == to_dot(large, body["result"])


def test_a_large_graph_in_the_request_is_written_from_arrays(client, large):
    response = client.post("/v1/graphs", json=large)
    assert response.status_code == 201
    assert json.loads(response.data)["result"] == evaluate(large)


def test_a_broken_large_graph_gets_the_dict_paths_problem(client, large):
    large["nodes"][3000]["inputs"] = ["x1", "q"]
    large["nodes"][4000]["op"] = "nope"
    with pytest.raises(GraphError) as want:
        parse_graph(large)
    response = client.post("/v1/graphs", json=large, headers=ASYNC)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["errors"] == want.value.errors
    assert problem["errors"][0]["path"] == "nodes/3000/inputs/1"
    assert "unknown node 'q'" in problem["errors"][0]["message"]


def test_a_large_graph_without_a_finite_value_fails_naming_the_node(client, worker_env, large):
    large["nodes"][0]["value"] = 1e200
    large["nodes"][1]["value"] = 1e200  # x0 * x1 overflows: node p0.1
    response = client.post("/v1/graphs", json=large, headers=ASYNC)
    graph_id = response.get_json()["id"]
    jobs.evaluate_graph(graph_id)
    failed = client.get(f"/v1/graphs/{graph_id}").get_json()
    assert failed["status"] == "failed"
    assert failed["error"]["node"] == "p0.1" and "node 'p0.1'" in failed["error"]["detail"]
