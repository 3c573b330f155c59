"""The marshmallow schemas alone: what they load, what they refuse and where they say."""

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from engine.data import DATASETS, GENERATORS
from engine.graph import FORMAT
from engine.losses import LOSSES, SAMPLE_LOSSES
from engine.nn import ACTIVATIONS
from engine.ops import OPS
from engine.optim import make_optimizer
from engine.spec import ENGINES, OPTIMIZER_DEFAULTS, normalize_spec
from schemas import (
    GraphSchema,
    HistorySchema,
    JobListArgsSchema,
    JobSchema,
    JobSpecSchema,
    ModelSchema,
    PredictRequestSchema,
    ProblemSchema,
)
from schemas.dump import dumper
from schemas.graph import plain_graph

from .service_helpers import MICROGRAD_GRAPH

CONTRACT_JOB = {
    "model": {"inputs": 2, "layers": [16, 16, 1], "activation": "relu"},
    "dataset": {"name": "moons", "samples": 100, "noise": 0.1, "seed": 0},
    "loss": "hinge",
    "optimizer": {"name": "sgd", "learning_rate": 1.0, "final_learning_rate": 0.1},
    "l2": 0.0001,
    "steps": 100,
    "batch_size": None,
    "seed": 1337,
}


def messages(schema, data):
    with pytest.raises(ValidationError) as caught:
        schema.load(data)
    return caught.value.messages


def test_graph_envelope_loads_the_node_list_as_it_came():
    nodes = [{"id": f"n{i}", "op": "input", "value": float(i)} for i in range(100_000)]
    loaded = GraphSchema().load({"format": "graph/1", "nodes": nodes, "output": "n7"})
    # the very list: no per-node work (the engine checks nodes in bulk)
    assert loaded["nodes"] is nodes and loaded["output"] == "n7"


def test_graph_schema_accepts_the_micrograd_graph():
    assert GraphSchema().load(MICROGRAD_GRAPH) == MICROGRAD_GRAPH


@pytest.mark.parametrize(
    "body, field",
    [
        ({"output": "a"}, "nodes"),
        ({"nodes": "a"}, "nodes"),
        ({"nodes": {"a": 1}}, "nodes"),
        ({"nodes": [], "format": 2}, "format"),
        ({"nodes": [], "output": ["a"]}, "output"),
        ({"nodes": [], "colour": "red"}, "colour"),
    ],
)
def test_graph_envelope_refusals_name_the_field(body, field):
    assert field in messages(GraphSchema(), body)


def test_job_spec_schema_loads_the_contract_example_unchanged():
    assert JobSpecSchema().load(CONTRACT_JOB) == CONTRACT_JOB
    assert JobSpecSchema().load({}) == {}  # the engine fills the defaults, not the schema


@pytest.mark.parametrize(
    "body, path",
    [
        ({"steps": "100"}, ["steps"]),
        ({"steps": 1.5}, ["steps"]),
        ({"steps": True}, ["steps"]),
        ({"l2": "0.1"}, ["l2"]),
        ({"l2": False}, ["l2"]),
        ({"l2": 10**400}, ["l2"]),
        ({"model": {"layers": [4, "x", 1]}}, ["model", "layers", 1]),
        ({"model": {"width": 3}}, ["model", "width"]),
        ({"optimizer": {"learning_rate": "fast"}}, ["optimizer", "learning_rate"]),
        ({"dataset": "moons"}, ["dataset"]),
        ({"data": {"x": "rows", "y": []}}, ["data", "x"]),
        ({"data": {"x": []}}, ["data", "y"]),
        ({"batch_size": "all"}, ["batch_size"]),
        ({"extra": 1}, ["extra"]),
    ],
)
def test_job_spec_type_errors_name_the_field(body, path):
    found = messages(JobSpecSchema(), body)
    for key in path:
        found = found[key]
    assert found


def test_job_spec_leaves_values_to_the_engine():
    # ranges and choices are the engine's to judge (one authority): the schema checks types
    loaded = JobSpecSchema().load({"steps": 0, "loss": "l1", "l2": -1})
    assert loaded == {"steps": 0, "loss": "l1", "l2": -1}


def test_job_spec_nulls_where_the_contract_allows_them():
    loaded = JobSpecSchema().load({"batch_size": None, "optimizer": {"final_learning_rate": None}})
    assert loaded["batch_size"] is None
    assert "steps" in messages(JobSpecSchema(), {"steps": None})


def test_inline_data_is_loaded_as_it_came():
    x = [[float(i), 1.0] for i in range(50_000)]
    loaded = JobSpecSchema().load({"data": {"x": x, "y": [1] * 50_000}})
    assert loaded["data"]["x"] is x


def test_list_query_validates_status_and_types():
    assert JobListArgsSchema().load({"limit": "5", "status": "queued"}) == {
        "limit": 5,
        "status": "queued",
    }
    assert "status" in messages(JobListArgsSchema(), {"status": "done"})
    assert "limit" in messages(JobListArgsSchema(), {"limit": "many"})


def test_predict_request_needs_x():
    assert "x" in messages(PredictRequestSchema(), {})
    assert "x" in messages(PredictRequestSchema(), {"x": 1})


def test_problem_schema_keeps_the_errors_and_extensions():
    problem = {
        "type": "about:blank",
        "title": "Invalid input",
        "status": 422,
        "detail": "nodes/3/inputs/0: unknown node 'q'",
        "errors": [{"path": "nodes/3/inputs/0", "message": "unknown node 'q'"}],
        "node": "q",
        "step": 4,
    }
    assert ProblemSchema().dump(problem) == problem


def test_job_schema_dumps_the_resource_and_hides_internals():
    job = {
        "id": "j",
        "status": "running",
        "created_at": "2026-11-21T20:00:00.000Z",
        "started_at": "2026-11-21T20:00:01.000Z",
        "finished_at": None,
        "progress": {"step": 42, "steps": 100},
        "metrics": {"loss": 0.12, "accuracy": 0.97},
        "model_id": None,
        "error": None,
        "spec": CONTRACT_JOB,
        "attempt": 1,
    }
    dumped = JobSchema().dump(job)
    assert "attempt" not in dumped
    assert dumped == {k: v for k, v in job.items() if k != "attempt"}


def test_history_and_model_dump_their_arrays_as_they_are():
    losses = [0.5] * 10_000
    dumped = HistorySchema().dump(
        {"job_id": "j", "step": list(range(10_000)), "loss": losses, "accuracy": [None] * 10_000}
    )
    assert dumped["loss"] is losses
    model = {
        "id": "m",
        "job_id": "j",
        "model": {"inputs": 2, "layers": [1], "activation": "relu"},
        "loss": "mse",
        "parameters": [0.1, 0.2, 0.3],
        "metrics": {"loss": 0.1, "accuracy": None},
    }
    assert ModelSchema().dump(model) == model


# -- the schemas read the engine's choices and defaults ----------------------------------


def openapi(schema, name):
    """The OpenAPI components a schema gives, as the API document holds them."""
    spec = APISpec("gradserve", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema(name, schema=schema)
    return spec.to_dict()["components"]["schemas"]


def test_openapi_ops_are_the_op_tables():
    components = openapi(GraphSchema, "Graph")
    assert components["Node"]["properties"]["op"]["enum"] == [op.name for op in OPS]
    attrs = {op.attr for op in OPS if op.attr is not None}
    assert set(components["NodeAttrs"]["properties"]) == attrs == {"exponent"}
    assert components["Graph"]["properties"]["format"]["enum"] == [FORMAT]


def test_openapi_job_choices_and_defaults_are_the_engines():
    components = openapi(JobSpecSchema, "JobSpec")
    spec, model, dataset = (
        components[n]["properties"] for n in ("JobSpec", "ModelSpec", "Dataset")
    )
    optimizer = components["Optimizer"]["properties"]
    assert spec["loss"]["enum"] == list(LOSSES) == list(SAMPLE_LOSSES)
    assert model["activation"]["enum"] == list(ACTIVATIONS)
    assert dataset["name"]["enum"] == list(DATASETS) == list(GENERATORS)
    assert optimizer["name"]["enum"] == list(OPTIMIZER_DEFAULTS)
    for name in OPTIMIZER_DEFAULTS:  # each choice is an optimizer the engine builds
        section = normalize_spec({"optimizer": {"name": name}})["optimizer"]
        assert make_optimizer(section, 1).name == name
    assert spec["engine"]["enum"] == list(ENGINES)
    demo = normalize_spec({})  # every default: an empty spec is micrograd's demo
    for key in ("loss", "l2", "steps", "seed", "engine"):
        assert spec[key]["default"] == demo[key], key
    assert model["layers"]["default"] == demo["model"]["layers"] == [16, 16, 1]
    assert model["activation"]["default"] == demo["model"]["activation"]
    assert {key: dataset[key]["default"] for key in demo["dataset"]} == demo["dataset"]
    assert optimizer["name"]["default"] == demo["optimizer"]["name"]


def _job_records():
    """Job records as the store gives them, in every state a job resource shows."""
    spec = normalize_spec({})
    base = {
        "id": "0" * 26,
        "status": "queued",
        "created_at": "2026-11-30T23:00:00.000000Z",
        "started_at": None,
        "finished_at": None,
        "progress": {"step": 0, "steps": 100},
        "metrics": {"loss": None, "accuracy": None},
        "model_id": None,
        "error": None,
        "spec": spec,
        "attempt": 0,  # hidden: not in the resource
    }
    inline = normalize_spec({"data": {"x": [[0.0, 1.0]], "y": [1]}, "steps": 3})
    inline["data"] = {"samples": 1, "features": 2, "sha256": "ab" * 32}
    return [
        base,
        {
            **base,
            "status": "running",
            "progress": {"step": 7, "steps": 100},
            "metrics": {"loss": 1, "accuracy": 0.5},
            "started_at": "2026-11-30T23:00:01Z",
        },
        {
            **base,
            "status": "succeeded",
            "model_id": "1" * 26,
            "metrics": {"loss": 0.0, "accuracy": 1},
            "finished_at": "2026-11-30T23:00:02Z",
            "spec": inline,
        },
        {
            **base,
            "status": "failed",
            "error": {
                "type": "tag:x",
                "title": "Non-finite",
                "status": 422,
                "detail": "d",
                "step": 3,
                "extension": "dropped",
                "errors": [{"path": "a", "message": "m"}],
            },
        },
        {key: value for key, value in base.items() if key != "metrics"},
    ]


@pytest.mark.parametrize("record", _job_records())
def test_the_compiled_dump_is_marshmallows(record):
    """schemas/dump.py: the hot job GET's dump gives what JobSchema().dump gives, value
    and type (a loss of 1 is 1.0), hidden and unknown members left out alike."""
    schema = JobSchema()
    fast, slow = dumper(schema)(record), schema.dump(record)
    assert fast == slow
    assert repr(fast) == repr(slow)  # the same types and key order


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
ENVELOPES = st.dictionaries(
    st.sampled_from(["format", "nodes", "output", "Nodes", "attrs", ""]), JSON_VALUES
) | st.builds(
    lambda nodes, extra: {**MICROGRAD_GRAPH, "nodes": nodes, **extra},
    st.lists(JSON_VALUES, max_size=3),
    st.dictionaries(st.sampled_from(["format", "output"]), st.text(max_size=8) | JSON_VALUES),
)


@given(ENVELOPES | JSON_VALUES)
def test_a_plain_graph_envelope_loads_as_graph_schema_loads_it(document):
    """The hot POST's envelope check (schemas.graph.plain_graph) gives GraphSchema().load's
    result, or None and GraphSchema decides: never a document GraphSchema refuses."""
    fast = plain_graph(document)
    if fast is None:
        return
    assert fast == GraphSchema().load(document)


def test_the_readme_graph_is_a_plain_envelope():
    assert plain_graph(MICROGRAD_GRAPH) == GraphSchema().load(MICROGRAD_GRAPH)
    assert plain_graph({**MICROGRAD_GRAPH, "output": None}) is None  # marshmallow words it
