"""Compiling once: an MLP's tape built a layer at a time is the traced one, and a program
taken from the cache trains as a fresh compile does; different structures never share."""

import random

import numpy as np
import pytest

from engine import MLP, Value
from engine.compiled import trace
from engine.compiled.cache import PROGRAMS, ProgramCache, structure_key
from engine.compiled.fuse import fuse
from engine.compiled.kernels import DotGroup, as_rows
from engine.compiled.program import Program
from engine.compiled.structured import mlp_tape
from engine.compiled.tape import Tape
from engine.spec import normalize_spec
from engine.train import initial_model, initial_parameters, train

ARCHITECTURES = [
    (1, [1]),
    (1, [3, 1]),
    (2, [1, 1]),
    (2, [1, 3]),
    (2, [16, 16, 1]),
    (3, [4, 1, 2]),
    (3, [3, 3, 3]),
    (2, [2, 2, 2, 2]),
    (5, [7, 3]),
]


def traced_tape(inputs, layers, activation, rng=0):
    """fuse(trace(...)) of the MLP, with the fed leaves' values set to 0.0 as mlp_tape's."""
    model = MLP(inputs, layers, activation, rng=rng)
    x = [Value(0.0) for _ in range(inputs)]
    tape = fuse(trace(model(x), inputs=x, params=model.parameters()))
    fed = set(tape.placeholders) | set(tape.params)
    attrs = [0.0 if i in fed else a for i, a in enumerate(tape.attrs)]
    return tape._replace(attrs=attrs)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("inputs, layers", ARCHITECTURES)
def test_the_layered_tape_is_the_traced_tape(inputs, layers, activation):
    want = traced_tape(inputs, layers, activation)
    got = mlp_tape(inputs, layers, activation)
    for field in Tape._fields:
        assert list(getattr(got, field)) == list(getattr(want, field)), field
    assert structure_key(got, fused=True) == structure_key(want, fused=True)


def spec(layers, loss="hinge", optimizer=None, batch_size=None, **extra):
    return {
        "model": {"inputs": 2, "layers": layers, "activation": "relu"},
        "dataset": {"name": "blobs", "samples": 40, "classes": 3} if loss == "ce" else {},
        "loss": loss,
        "optimizer": optimizer or {"name": "sgd", "learning_rate": 0.1},
        "batch_size": batch_size,
        "steps": 12,
        "engine": "compiled",
        **extra,
    }


JOBS = [
    spec([16, 16, 1]),
    spec([16, 16, 1], loss="bce", batch_size=7),
    spec([16, 16, 1], loss="mse", optimizer={"name": "adam", "learning_rate": 0.01}),
    spec([8, 3], loss="ce", batch_size=16, optimizer={"name": "sgd", "momentum": 0.9}),
    spec([8, 3], loss="ce", seed=7),
    spec([4, 4, 1], loss="hinge", l2=0.01, batch_size=5),
]


def test_a_cached_program_trains_as_a_fresh_compile():
    fresh = []
    for job in JOBS:
        PROGRAMS.clear()
        fresh.append(train(job))
        assert (PROGRAMS.misses, PROGRAMS.hits) == (1, 0)
    PROGRAMS.clear()
    for job in JOBS[::-1] + JOBS:  # every job after another of its architecture has run
        train(job)
    assert PROGRAMS.misses == 3 and PROGRAMS.hits == 2 * len(JOBS) - 3
    for job, want in zip(JOBS, fresh, strict=True):
        got = train(job)
        for field in ("loss", "accuracy", "parameters"):
            a = np.array(getattr(got, field), dtype=float)
            b = np.array(getattr(want, field), dtype=float)
            assert np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True), field
    assert PROGRAMS.misses == 3  # all of them from the cache


def test_copies_of_one_program_keep_their_own_arrays():
    cache = ProgramCache()
    tape = mlp_tape(2, [5, 1], "tanh")
    a, b = cache.program(tape, fused=True), cache.program(tape, fused=True)
    params = np.linspace(-1, 1, a.n_params)
    Xa, Xb = np.random.default_rng(0).normal(size=(2, 9, 2))
    za = a.forward(params, Xa)
    b.forward(params, Xb[:4])  # another batch, another size, between a's passes
    ga = a.backward(np.ones_like(za))
    fresh = Program(tape, fused=True)
    assert np.array_equal(za, fresh.forward(params, Xa))
    assert np.array_equal(ga, fresh.backward(np.ones_like(za)))


def key_of(build):
    """structure_key of the tape traced from build(), which returns (outputs, xs, ps)."""
    outputs, xs, ps = build()
    return structure_key(trace(outputs, inputs=xs, params=ps))


def leaves(n, values=None):
    return [Value(v) for v in (values or [0.5 + i for i in range(n)])]


def test_different_structures_get_different_keys():
    def graph(op):
        def build():
            (x,), (p, q) = leaves(1), leaves(2)
            return op(x, p, q), [x], [p, q]

        return build

    builds = [
        graph(lambda x, p, q: x * p + q),
        graph(lambda x, p, q: x * q + p),  # another operand
        graph(lambda x, p, q: p * x + q),  # operands swapped
        graph(lambda x, p, q: x * p - q),
        graph(lambda x, p, q: (x * p + q).relu()),
        graph(lambda x, p, q: (x * p + q).tanh()),
        graph(lambda x, p, q: (x * p + q) ** 2),
        graph(lambda x, p, q: (x * p + q) ** 3),  # another exponent
        graph(lambda x, p, q: x * p + q + 1.0),
        graph(lambda x, p, q: x * p + q + 2.0),  # another constant
        graph(lambda x, p, q: [x * p + q, x]),  # another output
    ]
    keys = [key_of(b) for b in builds]
    keys.append(structure_key(mlp_tape(2, [16, 16, 1], "relu"), fused=True))
    keys += [structure_key(mlp_tape(2, [16, 16, 1], a), fused=True) for a in ("tanh", "linear")]
    keys += [structure_key(mlp_tape(*arch, "relu"), fused=True) for arch in ARCHITECTURES[:-5]]
    keys.append(structure_key(mlp_tape(2, [16, 16, 1], "relu"), fused=True, scalar_below=0))
    keys.append(structure_key(mlp_tape(2, [16, 16, 1], "relu"), fused=False))
    assert len(set(keys)) == len(keys)

    # a leaf fed per sample and the same leaf fed per step are different programs
    x, p = leaves(2)
    assert structure_key(trace(x * p, inputs=[x], params=[p])) != structure_key(
        trace(x * p, inputs=[x, p])
    )


def test_fed_values_are_not_in_the_key():
    keys = set()
    for seed in range(3):
        model = MLP(2, [6, 1], "relu", rng=seed)
        x = leaves(2, [random.Random(seed).uniform(-1, 1) for _ in range(2)])
        keys.add(structure_key(trace(model(x), inputs=x, params=model.parameters())))
    assert len(keys) == 1


def test_the_cache_keeps_the_most_recently_used():
    cache = ProgramCache(max_programs=2)
    tapes = [mlp_tape(2, [n, 1], "relu") for n in (3, 4, 5)]
    keys = [structure_key(t, fused=True) for t in tapes]
    cache.program(tapes[0], fused=True)
    cache.program(tapes[1], fused=True)
    cache.program(tapes[0], fused=True)  # now the most recent
    cache.program(tapes[2], fused=True)
    assert [k in cache for k in keys] == [True, False, True]
    assert (len(cache), cache.hits, cache.misses) == (2, 1, 3)

    small = ProgramCache(max_bytes=1000)  # no program fits
    small.program(tapes[0], fused=True)
    assert len(small) == 0 and small.nbytes == 0

    same_size = [mlp_tape(2, [4, 1], a) for a in ("relu", "tanh", "sigmoid")]
    by_bytes = ProgramCache()
    by_bytes.program(same_size[0], fused=True)
    one = by_bytes.nbytes
    by_bytes.max_bytes = 2 * one + one // 2  # room for two of these, not three
    for tape in same_size[1:]:
        by_bytes.program(tape, fused=True)
    assert structure_key(same_size[0], fused=True) not in by_bytes
    assert len(by_bytes) == 2 and by_bytes.nbytes == 2 * one


@pytest.mark.parametrize(
    "model, seed, loss",
    [
        ({"inputs": 2, "layers": [16, 16, 1], "activation": "relu"}, 1337, "hinge"),
        ({"inputs": 2, "layers": [7, 1, 2], "activation": "tanh"}, 5, "ce"),
        ({"inputs": 2, "layers": [1], "activation": "linear"}, 0, "mse"),
    ],
)
def test_initial_parameters_are_the_initial_models(model, seed, loss):
    spec = normalize_spec({"model": model, "seed": seed, "loss": loss})
    want = [p.data for p in initial_model(spec).parameters()]
    assert initial_parameters(spec).tolist() == want
    result = train({**spec, "steps": 1})
    assert [p.data for p in result.model.parameters()] == result.parameters


@pytest.mark.parametrize("row_step, column_step", [(7, 1), (-7, 1), (7, -1), (-7, -1), (1, -9)])
def test_weights_are_views_whichever_way_their_slots_step(row_step, column_step):
    m, n = 4, 5
    base = 40
    slots = base + row_step * np.arange(m)[:, None] + column_step * np.arange(n)
    group = DotGroup(0, slots, np.arange(n))
    assert group.matrix == (base, row_step, column_step)
    U = np.random.default_rng(1).normal(size=100)
    view = group._view(U)
    assert np.shares_memory(view, U) and np.array_equal(view, U[slots])
    rows = as_rows(slots[:, 0])
    assert isinstance(rows, slice) and np.array_equal(U[rows], U[slots[:, 0]])


def test_rows_stepping_down_to_row_0_are_a_slice():
    rows = as_rows(np.array([6, 3, 0]))
    assert rows == slice(6, None, -3)
    assert np.arange(10)[rows].tolist() == [6, 3, 0]
