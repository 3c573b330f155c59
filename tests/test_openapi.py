"""The OpenAPI document: an operationId on every operation, none twice; its description;
and real answers of the running API (gunicorn, real workers) valid against the schemas it
documents for them."""

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from service.api.openapi import OPERATION_IDS

from .service_helpers import MICROGRAD_GRAPH, small_spec, wait_until

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_every_operation_has_an_operation_id_and_none_repeats(client):
    document = client.get("/openapi.json").get_json()
    found = list(operations(document))
    missing = [f"{m.upper()} {p}" for m, p, o in found if "operationId" not in o]
    assert not missing, f"add these to OPERATION_IDS in service/api/openapi.py: {missing}"
    ids = [o["operationId"] for _, _, o in found]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(set(OPERATION_IDS.values())) == len(OPERATION_IDS)
    assert {"createJob", "getJob", "listJobs", "predict", "getHealth", "getReadiness"} <= set(ids)


def test_the_document_describes_the_service_and_the_probes(client):
    document = client.get("/openapi.json").get_json()
    assert "micrograd" in document["info"]["description"]
    schemas = document["components"]["schemas"]
    for path, name, status in (("/healthz", "Health", "ok"), ("/readyz", "Readiness", "ready")):
        answer = document["paths"][path]["get"]["responses"]["200"]
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith(f"/{name}")
        assert schemas[name]["properties"]["status"]["enum"] == [status]


# -- real answers against the document, over HTTP ------------------------------------------


@pytest.fixture(scope="module")
def document(stack):
    return requests.get(f"{stack}/openapi.json", timeout=10).json()


def check(document, method, path, response):
    """`response` is valid against the schema `document` gives for its status."""
    operation = document["paths"][path][method]
    answer = operation["responses"][str(response.status_code)]
    if "$ref" in answer:  # a shared answer: #/components/responses/NOT_FOUND
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"][response.headers["Content-Type"].split(";")[0]]["schema"]
    validator = OAS30Validator(
        {**schema, "components": document["components"]}, format_checker=None
    )
    errors = sorted(validator.iter_errors(response.json()), key=str)
    assert not errors, f"{method.upper()} {path} {response.status_code}: {errors[0]}"
    return response.json()


def finished(api, job_id):
    def done():
        job = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(done, timeout=60)


@pytest.mark.e2e
@pytest.mark.parametrize("loss", ["hinge", "bce", "ce", "mse"])
def test_a_jobs_answers_match_their_schemas(stack, api, document, loss):
    spec = small_spec(loss=loss)
    if loss == "ce":
        spec = small_spec(loss="ce", model={"inputs": 2, "layers": [4, 3]})
        spec["dataset"] = {"name": "blobs", "samples": 16, "classes": 3}
    if loss == "mse":
        spec["data"] = {"x": [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], "y": [1.0, -1.0, 0.0]}
        del spec["dataset"]
    created = api.post("/v1/jobs", json=spec)
    job = check(document, "post", "/v1/jobs", created)
    path = "/v1/jobs/{job_id}"
    check(document, "get", path, api.get(f"/v1/jobs/{job['id']}"))
    job = finished(api, job["id"])
    assert job["status"] == "succeeded"
    check(document, "get", path, api.get(f"/v1/jobs/{job['id']}"))
    history = api.get(f"/v1/jobs/{job['id']}/history")
    check(document, "get", path + "/history", history)
    check(document, "get", "/v1/jobs", api.get("/v1/jobs?limit=2"))
    if loss == "mse":
        check(document, "get", path + "/data", api.get(f"/v1/jobs/{job['id']}/data"))
    model = f"/v1/models/{job['model_id']}"
    check(document, "get", "/v1/models/{model_id}", api.get(model))
    predicted = api.post(f"{model}/predict", json={"x": [[0.5, -0.5], [1.0, 0.25]]})
    body = check(document, "post", "/v1/models/{model_id}/predict", predicted)
    if loss == "bce":  # a probability per row, as the document now says
        assert all(isinstance(p, float) for p in body["probabilities"])
    if loss == "ce":
        assert all(len(p) == 3 for p in body["probabilities"])


@pytest.mark.e2e
def test_failed_cancelled_and_graph_answers_match_their_schemas(stack, api, document):
    failing = small_spec(optimizer={"name": "sgd", "learning_rate": 1e300}, loss="mse")
    job = finished(api, api.post("/v1/jobs", json=failing).json()["id"])
    assert job["status"] == "failed"
    check(document, "get", "/v1/jobs/{job_id}", api.get(f"/v1/jobs/{job['id']}"))
    running = api.post("/v1/jobs", json=small_spec(steps=1_000_000)).json()
    cancelled = api.post(f"/v1/jobs/{running['id']}/cancel")
    check(document, "post", "/v1/jobs/{job_id}/cancel", cancelled)
    graph = check(document, "post", "/v1/graphs", api.post("/v1/graphs", json=MICROGRAD_GRAPH))
    check(document, "get", "/v1/graphs/{graph_id}", api.get(f"/v1/graphs/{graph['id']}"))
    queued = api.post("/v1/graphs", json=MICROGRAD_GRAPH, headers={"Prefer": "respond-async"})
    check(document, "post", "/v1/graphs", queued)
    check(document, "get", "/v1/webhooks/secret", api.get("/v1/webhooks/secret"))
    check(document, "get", "/healthz", api.get("/healthz"))
    check(document, "get", "/readyz", api.get("/readyz"))
    check(document, "get", "/v1/jobs/{job_id}", api.get("/v1/jobs/nope"))
    problem = check(document, "post", "/v1/jobs", api.post("/v1/jobs", json={"steps": 0}))
    assert problem["errors"][0]["path"] == "steps"
