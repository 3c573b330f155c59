"""The worker compiles a training job's model before rq forks its horse: over HTTP, with
the real workers, each horse finds the program in the cache it inherited, unless the model
is too large to compile in the worker (service/worker/warm.py)."""

import re

import pytest

from service.worker.warm import WARM_MAX_PARAMETERS

from .service_helpers import small_spec
from .test_e2e import finished, submit

pytestmark = pytest.mark.e2e


def first_step_logs(stack_dir, job_id):
    """How the horse of each run of the job got its program, from the workers' log."""
    log = (stack_dir / "stack.log").read_text(errors="replace")
    pattern = rf"job {job_id}: first step [0-9.]+ ms after the worker took it, [0-9.]+ ms "
    return re.findall(pattern + r"after train\(\) began \((.+?)\)", log)


def parameters(layers, inputs=2):
    sizes = [inputs, *layers]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def test_horses_inherit_the_program_their_worker_compiled(api, stack_dir):
    spec = small_spec(model={"inputs": 2, "layers": [7, 5, 1]})  # trained by no other test
    jobs = [submit(api, spec) for _ in range(3)]
    for job_id in jobs:
        assert finished(api, job_id)["status"] == "succeeded"
        assert first_step_logs(stack_dir, job_id) == ["program inherited"]


def test_a_model_too_large_for_the_worker_is_compiled_in_its_horse(api, stack_dir):
    layers = [320, 320, 1]
    assert parameters(layers) > WARM_MAX_PARAMETERS
    job_id = submit(api, small_spec(model={"inputs": 2, "layers": layers}, steps=1))
    assert finished(api, job_id, timeout=120)["status"] == "succeeded"
    assert first_step_logs(stack_dir, job_id) == ["compiled in the horse"]
