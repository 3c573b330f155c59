"""Issue 14, compiling once: whole train() calls against PyTorch 2.13's whole loop (CPU,
float64, one thread), a first job (nothing cached) and a second one (the program cached);
compiling 2-64-64-1 alone; and, through a real worker, how long after the worker takes a
training job its first step comes, for a first and a second job of one architecture. All
ratios come from this one run."""

import re
import time

import requests

from bench import servers
from bench.bench_compiled import torch_demo_step
from bench.bench_service import wait_for
from bench.timing import best_of, fastest, round_robin
from engine.compiled import Program, trace
from engine.compiled.cache import PROGRAMS
from engine.compiled.structured import mlp_tape
from engine.nn import MLP
from engine.spec import normalize_spec
from engine.train import train
from engine.value import Value

CASES = (
    ("micrograd's demo, 2-16-16-1, 100 steps", [16, 16, 1], 100),
    ("2-64-64-1, 20 steps", [64, 64, 1], 20),
)
RUNS = 9


def spec_of(layers, steps):
    return normalize_spec(
        {"model": {"inputs": 2, "layers": layers, "activation": "relu"}, "steps": steps}
    )


def ours(spec, cached):
    """A whole train() call: () -> (ms for the call, ms from the call to its first step),
    with the program cached, or with the cache emptied first (a first job)."""

    def run():
        if not cached:
            PROGRAMS.clear()
        stamps = []
        started = time.perf_counter()
        train(spec, on_step=lambda progress: stamps.append(time.perf_counter()))
        return (time.perf_counter() - started) * 1e3, (stamps[0] - started) * 1e3

    return run


def pytorch_loop(spec, torch):
    """PyTorch's whole loop of the same job: () -> (ms, None). Full batch, hinge loss +
    l2, SGD with the demo's decaying rate; the model is built once, before."""
    steps = spec["steps"]
    step = torch_demo_step(spec, torch, steps)

    def run():
        started = time.perf_counter()
        for k in range(steps):
            step(k)
        return (time.perf_counter() - started) * 1e3, None

    return run


def compile_times(layers):
    """ms to lower the model: traced Value by Value and fused (as before), a layer at a
    time (a first job), and found in the cache (a second job: building the tape, hashing)."""

    def traced():
        model = MLP(2, layers, "relu", rng=0)
        x = [Value(0.0) for _ in range(2)]
        return Program(trace(model(x), inputs=x, params=model.parameters()))

    def layered():
        return Program(mlp_tape(2, layers, "relu"), fused=True)

    def cached():
        return PROGRAMS.program(mlp_tape(2, layers, "relu"), fused=True)

    cached()
    return [best_of(f, RUNS, budget=3.0) * 1e3 for f in (traced, layered, cached)]


FIRST_STEP = re.compile(
    r"job (\S+): first step ([0-9.]+) ms after the worker took it, ([0-9.]+) ms after "
    r"train\(\) began \((.+)\)"
)


def through_a_worker(layers, steps, jobs=3):
    """For `jobs` jobs of one architecture run one after another by one real worker (its
    own Redis, gunicorn, `make run`'s stack): the worker's log of how long after it took
    each job its first step came (ms), and whether the horse had to compile."""
    with servers.redis() as (url, data_dir):
        with servers.stack(url, data_dir) as base:
            spec = {"model": {"inputs": 2, "layers": layers}, "steps": steps}
            for _ in range(jobs):
                response = requests.post(f"{base}/v1/jobs", json=spec, timeout=30)
                job = wait_for(
                    base + response.headers["Location"],
                    lambda j: j["status"] in ("succeeded", "failed", "cancelled"),
                )
                assert job["status"] == "succeeded", job
        found = FIRST_STEP.findall((data_dir / "stack.log").read_text())
    return [(float(taken), float(began), how) for _, taken, began, how in found]


def main():
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch==2.13.0): no PyTorch figures")

    print("Whole train() calls: moons (100 samples), hinge + l2, SGD 1.0 -> 0.1, full batch")
    for name, layers, steps in CASES:
        spec = spec_of(layers, steps)
        runs = {"first job": ours(spec, cached=False), "cached": ours(spec, cached=True)}
        if torch:
            runs["PyTorch"] = pytorch_loop(spec, torch)
        best = {name: fastest(s) for name, s in round_robin(runs, RUNS).items()}
        theirs = best["PyTorch"][0] if torch else None
        print(f"  {name} (best of {RUNS} rounds):")
        for label in ("first job", "cached"):
            whole, to_step = best[label]
            ratio = f" = {whole / theirs:.2f}x PyTorch's whole loop" if theirs else ""
            print(
                f"    {label}: {whole:.1f} ms ({whole / steps:.3f} ms/step), first step "
                f"{to_step:.1f} ms after the call{ratio}"
            )
        if theirs:
            print(f"    PyTorch: {theirs:.1f} ms ({theirs / steps:.3f} ms/step)")
        first_step = best["first job"][1]

    traced, layered, cached = compile_times([64, 64, 1])
    print(
        f"\nLowering 2-64-64-1: traced Value by Value and fused {traced:.1f} ms; a layer at "
        f"a time {layered:.1f} ms ({traced / layered:.0f}x as fast); from the cache "
        f"{cached:.2f} ms"
    )

    print("\nThrough one real worker (POST, one job after another), 2-64-64-1, 20 steps:")
    for k, (taken, began, how) in enumerate(through_a_worker([64, 64, 1], 20)):
        print(
            f"  job {k + 1}: first step {taken:.1f} ms after the worker took it, {began:.1f} "
            f"ms after the horse called train() ({how})"
        )
    print(f"  (in-process, first job: {first_step:.1f} ms from the call to the first step)")


if __name__ == "__main__":
    main()
