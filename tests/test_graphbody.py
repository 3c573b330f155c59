"""api/graphbody.py: a large graph/1 body validated into columns while its JSON is read,
its duplicate keys found by counting ':' instead of jsonbody's screens; anything the count
or engine.columns cannot vouch for gets every screen, worded as before."""

import json
import random

import pytest

from bench.shapes import products_and_sum_tree
from engine import GraphError, evaluate
from engine.columns import columns_of
from engine.graph import parse_graph
from service.api.graphbody import GraphVouch, keys_unique
from tests.test_columns import same_columns

MAX_DEPTH, MAX_NODES = 64, 10**6


@pytest.fixture(scope="module")
def large():
    return products_and_sum_tree(80)  # 6,399 nodes: a large graph, read as columns


def text_of(doc):
    return json.dumps(doc)


def with_colon_ids(doc):
    """The same graph, its ids holding ':' (allowed in ids), and an explicit output."""
    doc = json.loads(json.dumps(doc))
    for node in doc["nodes"]:
        node["id"] = "n:" + node["id"]
        if "inputs" in node:
            node["inputs"] = ["n:" + i for i in node["inputs"]]
    doc["output"] = doc["nodes"][-1]["id"]
    return doc


def entry(key, value):
    return f"{json.dumps(key)}: {json.dumps(value)}"


def duplicated(doc, rng):
    """`doc` as JSON text with one key of a random node (or of its attrs) written twice."""
    k = rng.randrange(len(doc["nodes"]))
    texts = [json.dumps(node) for node in doc["nodes"]]
    node = doc["nodes"][k]
    entries = [entry(key, value) for key, value in node.items()]
    twice = rng.randrange(len(entries))
    if "attrs" in node and rng.random() < 0.5:
        entries[list(node).index("attrs")] = '"attrs": {"exponent": %s, "exponent": %s}' % (
            (json.dumps(node["attrs"]["exponent"]),) * 2
        )
    else:
        entries.insert(twice, entries[twice])
    texts[k] = "{" + ", ".join(entries) + "}"
    rest = "".join(f", {entry(key, value)}" for key, value in doc.items() if key != "nodes")
    return '{"nodes": [' + ", ".join(texts) + "]" + rest + "}"


def vouch(text):
    v = GraphVouch(MAX_DEPTH, MAX_NODES)
    return v, v(text.encode(), json.loads(text))


@pytest.mark.parametrize("shape", [lambda d: d, with_colon_ids])
def test_a_valid_large_graph_is_vouched_for_with_its_columns(large, shape):
    doc = shape(large)
    v, ok = vouch(text_of(doc))
    assert ok and same_columns(v.columns, columns_of(doc))
    compact = json.dumps(doc, separators=(",", ":"))  # any spacing counts the same
    assert vouch(compact)[1]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("shape", [lambda d: d, with_colon_ids])
def test_a_duplicate_key_anywhere_is_not_vouched_for(large, shape, seed):
    doc = shape(large)
    for node in random.Random(seed).sample(doc["nodes"], 3):  # pows: their attrs too
        if node["op"] == "mul":
            node.update(op="pow", inputs=node["inputs"][:1], attrs={"exponent": 2})
    assert vouch(text_of(doc))[1]
    text = duplicated(doc, random.Random(seed))
    assert json.loads(text) == doc  # the parsed document hides the duplicate...
    assert not vouch(text)[1]  # ...the count finds it
    assert not keys_unique(text.encode(), doc, columns_of(doc))


def test_a_duplicate_top_level_key_is_not_vouched_for(large):
    text = text_of(large)
    assert not vouch('{"output": "x1", ' + text[1:-1] + ', "output": "x1"}')[1]


def test_small_or_unusual_graphs_take_every_screen(large):
    small = {"nodes": large["nodes"][:100]}
    assert not vouch(text_of(small))[1]
    assert not GraphVouch(3, MAX_NODES)(text_of(large).encode(), large)  # deeper than allowed
    assert not GraphVouch(MAX_DEPTH, 1000)(text_of(large).encode(), large)  # too many nodes
    broken = json.loads(text_of(large))
    broken["nodes"][3000]["inputs"] = ["x1", "q"]
    assert not vouch(text_of(broken))[1]


# --- through the API ---


def post(client, text, headers=None):
    return client.post(
        "/v1/graphs", data=text, content_type="application/json", headers=headers or {}
    )


@pytest.mark.parametrize("seed", range(3))
def test_the_api_refuses_a_large_graphs_duplicate_key_naming_it(client, large, seed):
    response = post(client, duplicated(large, random.Random(seed)))
    assert response.status_code == 400
    problem = response.get_json()
    assert "appears more than once" in problem["errors"][0]["message"]
    assert problem["errors"][0]["path"].startswith("nodes/")


def test_an_escaped_colon_does_not_hide_a_large_graphs_duplicate(client, large):
    # the escape is one ':' the body does not spell; the duplicate one more: they cancel
    doc = with_colon_ids(large)
    text = text_of(doc).replace('"n:x1"', '"n\\u003ax1"', 1)
    text = text.replace('"op": "mul"', '"op": "mul", "op": "mul"', 1)
    response = post(client, text)
    assert response.status_code == 400
    assert "appears more than once" in response.get_json()["errors"][0]["message"]


def test_the_api_evaluates_a_vouched_large_graph(client, large):
    doc = with_colon_ids(large)
    response = post(client, text_of(doc))
    assert response.status_code == 201
    assert json.loads(response.data)["result"] == evaluate(doc)


def test_a_broken_large_graph_still_names_the_node(client, large):
    broken = json.loads(text_of(large))
    broken["nodes"][3000]["inputs"] = ["x1", "q"]
    response = post(client, text_of(broken), {"Prefer": "respond-async"})
    assert response.status_code == 422
    with pytest.raises(GraphError) as want:
        parse_graph(broken)
    assert response.get_json()["errors"] == want.value.errors
    first = want.value.errors[0]
    assert first["path"] == "nodes/3000/inputs/1"
    assert first["message"].startswith("unknown node 'q'")


def test_a_vouched_graph_is_not_parsed_again(client, large, monkeypatch):
    from service.api import hotpath
    from service.api.routes import graphs

    parsed, parse = [], graphs.parse

    def counted(document, max_nodes):
        parsed.append(len(document["nodes"]))
        return parse(document, max_nodes)

    monkeypatch.setattr(graphs, "parse", counted)
    monkeypatch.setattr(hotpath, "parse", counted)  # a small graph's answer, below Flask
    assert post(client, text_of(large), {"Prefer": "respond-async"}).status_code == 202
    assert parsed == []  # validated once, while its JSON was read
    assert post(client, text_of({"nodes": large["nodes"][:10]})).status_code == 201
    assert parsed == [10]  # a small graph: parsed in the request, as before
