"""Issue 3, the compiled path: training steps against PyTorch 2.13 (CPU, float64, one
thread), micrograd 0.1.0 and our reference path; a 1,000,000-node graph/1 against
micrograd's build+backward of the same graph; bytes per node; where evaluate should switch
from the Value engine to the compiled program. All ratios come from this one run."""

import random
import sys
import threading
import time
import tracemalloc

import numpy as np

from bench.shapes import BIG_LEAVES, micrograd_products_and_sum_tree, products_and_sum_tree
from bench.timing import best_of
from engine import data, evaluate
from engine.compiled import compile_program, evaluate_compiled, from_parsed
from engine.compiled.cache import PROGRAMS
from engine.graph import evaluate_parsed, parse_graph
from engine.spec import normalize_spec
from engine.train import make_backend, train

STEPS = 100
NETS = ([16, 16, 1], [64, 64, 1])  # micrograd's moons demo, and a wider one


def demo_spec(layers):
    return normalize_spec(
        {"model": {"inputs": 2, "layers": layers, "activation": "relu"}, "steps": STEPS}
    )


# --- training: ms per step ---


def compiled_step(spec):
    """(steady ms per step: the spacing of on_step calls, ms per step over the whole train()
    call: data, tracing and lowering included)."""
    spacings = []

    def run():
        stamps = []
        PROGRAMS.clear()  # lowering included: bench_train has the cached figures
        train(spec, on_step=lambda progress: stamps.append(time.perf_counter()))
        spacings.append(float(np.median(np.diff(stamps))))

    whole = best_of(run, 5, budget=5.0)
    return min(spacings) * 1e3, whole / STEPS * 1e3


def reference_step(spec):
    X, Y = data.load(spec)
    backend = make_backend("reference", spec["model"], spec["loss"], X, Y)
    params = np.zeros(len(backend.params)) + 0.1
    return best_of(lambda: backend.loss_and_grads(params, None), 2, budget=5.0) * 1e3


def torch_demo_step(spec, torch, steps):
    """PyTorch's step of the demo job: full batch, hinge loss + l2, SGD with the demo's
    decay over `steps`; step(k) -> the loss. The model is built once, here."""
    torch.set_num_threads(1)
    X, Y = data.load(spec)
    X, Y = torch.tensor(X), torch.tensor(Y, dtype=torch.float64)
    sizes = [2, *spec["model"]["layers"]]
    layers = [
        torch.nn.Linear(a, b, dtype=torch.float64)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    params = [p for layer in layers for p in layer.parameters()]

    def step(k):
        h = X
        for i, layer in enumerate(layers):
            h = layer(h)
            h = torch.relu(h) if i < len(layers) - 1 else h
        loss = torch.relu(1 - Y * h[:, 0]).mean() + 1e-4 * sum((p * p).sum() for p in params)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= (1.0 - 0.9 * k / steps) * p.grad
        return loss.item()

    return step


def torch_step(spec, torch):
    """The same step in PyTorch: ms per step."""
    step = torch_demo_step(spec, torch, STEPS)

    def run():
        for k in range(STEPS):
            step(k)

    run()  # warm up
    return best_of(run, 5, budget=5.0) / STEPS * 1e3


def micrograd_step(spec, micrograd):
    """One step of micrograd's own demo (its nn.MLP, hinge loss, l2, SGD), in a thread with
    a big stack: its recursive topological sort is as deep as the l2 sum is long."""
    Value, MLP = micrograd
    X, Y = data.load(spec)
    random.seed(1337)
    model = MLP(2, spec["model"]["layers"])
    rows, labels = X.tolist(), Y.tolist()

    def step():
        scores = [model(list(map(Value, row))) for row in rows]
        losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores, strict=True)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= 1.0 * p.grad

    return in_big_stack(lambda: best_of(step, 2, budget=10.0)) * 1e3


def in_big_stack(fn):
    """fn() in a thread with a 1 GiB stack and no recursion limit to speak of."""
    result = {}
    threading.stack_size(1 << 30)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10**7)
    try:
        worker = threading.Thread(target=lambda: result.setdefault("value", fn()))
        worker.start()
        worker.join()
    finally:
        threading.stack_size(0)
        sys.setrecursionlimit(limit)
    return result.get("value")


# --- graphs ---


def random_graph(n, seed=0):
    """graph/1 of every op, each node reading two of the last 1,000 (a wide, mixed graph)."""
    rng = random.Random(seed)
    nodes = [{"id": f"x{i}", "op": "input", "value": rng.uniform(0.5, 1.5)} for i in range(64)]
    for i in range(n - 64):
        op = rng.choice(["add", "mul", "sub", "tanh", "sigmoid", "relu", "neg", "exp", "log"])
        a, b = (nodes[rng.randrange(max(0, len(nodes) - 1000), len(nodes))]["id"] for _ in "ab")
        if op in ("exp", "log"):  # on a leaf: stays finite
            nodes.append({"id": f"n{i}", "op": op, "inputs": [f"x{rng.randrange(64)}"]})
        else:
            arity = 2 if op in ("add", "mul", "sub") else 1
            nodes.append({"id": f"n{i}", "op": op, "inputs": [a, b][:arity]})
    return {"nodes": nodes}


def chain(n):
    nodes = [{"id": "x", "op": "input", "value": 0.5}, {"id": "k", "op": "input", "value": 1.0}]
    for i in range(n - 2):
        nodes.append({"id": f"c{i}", "op": "add", "inputs": ["x" if i == 0 else f"c{i - 1}", "k"]})
    return {"nodes": nodes}


def bytes_per_node(build, n):
    """tracemalloc's (held after, peak) bytes of build(), per node."""
    tracemalloc.start()
    kept = build()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return held / n, peak / n


def main():
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch==2.13.0): no PyTorch figures")
    try:
        from micrograd.engine import Value as MicrogradValue
        from micrograd.nn import MLP as MicrogradMLP

        micrograd = (MicrogradValue, MicrogradMLP)
    except ImportError:
        micrograd = None
        print("micrograd is not installed (pip install micrograd==0.1.0): no micrograd figures")

    print(f"Training, moons (100 samples), hinge + l2, SGD 1.0 -> 0.1, full batch, {STEPS} steps")
    for layers in NETS:
        spec = demo_spec(layers)
        steady, whole = compiled_step(spec)
        reference = reference_step(spec)
        name = "-".join(map(str, [2, *layers]))
        print(
            f"  {name}: compiled {steady:.3f} ms/step ({whole:.3f} ms/step over the whole "
            f"train() call, tracing included); reference {reference:.0f} ms/step: compiled "
            f"is {reference / steady:,.0f}x as fast"
        )
        if torch:
            theirs = torch_step(spec, torch)
            print(
                f"    PyTorch {theirs:.3f} ms/step: compiled takes {steady / theirs:.2f}x "
                f"PyTorch's time ({whole / theirs:.2f}x over the whole call)"
            )
        if micrograd:
            theirs = micrograd_step(spec, micrograd)
            print(
                f"    micrograd {theirs:,.0f} ms/step: compiled is {theirs / steady:,.0f}x as "
                f"fast ({theirs / whole:,.0f}x over the whole call)"
            )

    n_big = BIG_LEAVES + BIG_LEAVES * (BIG_LEAVES - 1) // 2 * 2 - 1
    doc = products_and_sum_tree(BIG_LEAVES)
    assert len(doc["nodes"]) == n_big
    parse = best_of(lambda: parse_graph(doc), 2, budget=10.0)
    parsed = parse_graph(doc)
    compiled = best_of(lambda: evaluate_compiled(parsed), 3, budget=10.0)
    whole = best_of(lambda: evaluate(doc), 2, budget=15.0)
    print(f"\nA {n_big:,}-node graph/1 ({BIG_LEAVES:,} leaves, products, a sum tree):")
    print(
        f"  evaluate(doc) {whole:.2f} s = parse_graph {parse:.2f} s + evaluate_compiled "
        f"{compiled:.2f} s (its result dicts of 1M values and grads included)"
    )
    held, peak = bytes_per_node(lambda: _run(compile_program(from_parsed(parsed))), n_big)
    print(f"  the compiled program: {held:.0f} bytes per node held, {peak:.0f} at peak")
    if micrograd:
        theirs = in_big_stack(
            lambda: best_of(lambda: micrograd_products_and_sum_tree(MicrogradValue, doc), 1)
        )
        print(
            f"  micrograd build+backward {theirs:.2f} s: evaluate(doc) is "
            f"{theirs / whole:.1f}x as fast, evaluate_compiled {theirs / compiled:.1f}x"
        )
        small = products_and_sum_tree(200)
        held_mg, _ = bytes_per_node(
            lambda: micrograd_products_and_sum_tree(MicrogradValue, small), len(small["nodes"])
        )
        print(
            f"  micrograd holds {held_mg:.0f} bytes per node ({len(small['nodes']):,}-node "
            f"graph of the same shape): the program needs {held / held_mg:.0%} of that"
        )

    print("\nWhere evaluate should switch to the compiled program (best of 3, ms):")
    for family, make in (
        ("products+sum tree", _products_of_size),
        ("mixed ops", random_graph),
        ("chain", chain),
    ):
        cells = []
        for n in (1_000, 3_000, 10_000, 30_000):
            p = parse_graph(make(n))
            ours = best_of(lambda p=p: evaluate_compiled(p), 3, budget=2.0)
            values = best_of(lambda p=p: evaluate_parsed(p), 3, budget=2.0)
            cells.append(f"{len(p.ids):,}: {values * 1e3:.1f} vs {ours * 1e3:.1f}")
        print(f"  {family} (nodes: floats, evaluate_parsed, vs compiled): " + "; ".join(cells))


def _products_of_size(n):
    leaves = int((n / 2) ** 0.5) + 1  # about n nodes: k^2/2 products and as many adds
    return products_and_sum_tree(leaves)


def _run(program):
    program.forward()
    program.backward([[1.0]])
    return program


if __name__ == "__main__":
    main()
