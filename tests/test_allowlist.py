"""Which queue entries a worker runs (service.worker.allowlist), entry by entry; a real worker
refusing them is in test_worker_guard."""

import json

import pytest
from rq.serializers import JSONSerializer

from service.store.queue import EVALUATE_GRAPH, TRAIN
from service.worker.allowlist import GradserveJob, RefusedJob, refusal

ID = "0123456789abcdef0123456789abcdef"
NOWHERE = "tests.no_such_module.function"  # importing it would raise ModuleNotFoundError


def entry(redis_client, data, **fields):
    job = GradserveJob(connection=redis_client, serializer=JSONSerializer)
    job.data = data if isinstance(data, bytes) else json.dumps(data).encode()
    for name, value in fields.items():
        setattr(job, name, value)
    return job


@pytest.mark.parametrize("function", [TRAIN, EVALUATE_GRAPH])
def test_gradserves_own_functions_with_one_id_run(redis_client, function):
    assert refusal(entry(redis_client, [function, None, [ID], {}])) is None


@pytest.mark.parametrize(
    ("data", "fields", "reason"),
    [
        (["os.makedirs", None, ["/tmp/x"], {}], {}, "it names 'os.makedirs'"),
        ([NOWHERE, None, [], {}], {}, f"it names '{NOWHERE}'"),
        ([["a", "list"], None, [], {}], {}, "it names ['a', 'list']"),
        ([TRAIN, {"an": "instance"}, [ID], {}], {}, "not one of gradserve's job functions"),
        ([TRAIN, None, [ID, ID], {}], {}, "not one id"),
        ([TRAIN, None, [], {"job_id": ID}], {}, "not one id"),
        ([TRAIN, None, [7], {}], {}, "not one id"),
        ([TRAIN, None, [ID], {}], {"_success_callback_name": "os.system"}, "callbacks"),
        ([TRAIN, None, [ID], {}], {"_failure_callback_name": "os.system"}, "callbacks"),
        ([TRAIN, None, [ID], {}], {"_stopped_callback_name": "os.system"}, "callbacks"),
        ([TRAIN, None, [ID], {}], {"_dependency_ids": ["other"]}, "depends on rq jobs"),
        (b"\x80 not json", {}, "its data cannot be read"),
    ],
)
def test_anything_else_is_refused_saying_why(redis_client, data, fields, reason):
    assert reason in refusal(entry(redis_client, data, **fields))


def test_a_refused_function_is_never_looked_up(redis_client):
    refused = entry(redis_client, [NOWHERE, None, [], {}])
    with pytest.raises(RefusedJob, match="refused"):  # not ModuleNotFoundError: no import
        getattr(refused, "func")  # noqa: B009 - the property is what is tested
    assert entry(redis_client, [TRAIN, None, [ID], {}]).func.__name__ == "run_training"


def test_named_callbacks_are_never_imported(redis_client):
    job = entry(
        redis_client,
        [TRAIN, None, [ID], {}],
        _success_callback_name=NOWHERE,
        _failure_callback_name=NOWHERE,
        _stopped_callback_name=NOWHERE,
    )
    assert job.success_callback is None
    assert job.failure_callback is None
    assert job.stopped_callback is None
