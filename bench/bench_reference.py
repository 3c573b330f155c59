"""The reference path's moons demo step against micrograd 0.1.0's, in the same run.

The step is micrograd's demo: 100 moons samples, MLP 2-16-16-1, hinge loss, l2 1e-4, SGD.
Both start from the same data and the same initial weights (seed 1337), so their losses
must agree too; the bench prints how closely. micrograd is a bench-only yardstick
(`pip install micrograd==0.1.0`), never a dependency.
"""

import gc
import random
import time

from engine import train
from engine.data import make_moons

OUR_STEPS = 20
MICROGRAD_STEPS = 3  # about a second each


class _Enough(Exception):
    pass


def our_steps(steps):
    """ms per step of the reference path over the demo's first `steps` steps, and its losses
    (the run is the demo's 100 steps, stopped early: its learning rates are the demo's)."""
    stamps, losses = [time.perf_counter()], []

    def on_step(progress):
        stamps.append(time.perf_counter())
        losses.append(progress.loss)
        if len(losses) == steps:
            raise _Enough

    try:
        train({"engine": "reference"}, on_step=on_step)
    except _Enough:
        pass
    return _per_step_ms(stamps), losses


def micrograd_steps(steps, collect=True):
    """ms per step of micrograd's demo loop as its notebook writes it, and its losses."""
    from micrograd.engine import Value
    from micrograd.nn import MLP

    x, labels = make_moons(samples=100, noise=0.1, seed=0)
    ys = [2 * label - 1 for label in labels]
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    stamps, losses = [time.perf_counter()], []
    was_enabled = gc.isenabled()
    if not collect:
        gc.disable()
    try:
        for k in range(steps):
            inputs = [list(map(Value, row)) for row in x]
            scores = list(map(model, inputs))
            hinge = [(1 + -yi * si).relu() for yi, si in zip(ys, scores, strict=True)]
            data_loss = sum(hinge) * (1.0 / len(hinge))
            reg_loss = 1e-4 * sum(p * p for p in model.parameters())
            total_loss = data_loss + reg_loss
            model.zero_grad()
            total_loss.backward()
            learning_rate = 1.0 - 0.9 * k / 100
            for p in model.parameters():
                p.data -= learning_rate * p.grad
            losses.append(total_loss.data)
            stamps.append(time.perf_counter())
    finally:
        if was_enabled:
            gc.enable()
    return _per_step_ms(stamps), losses


def _per_step_ms(stamps):
    """The fastest step: the least noisy figure on a shared machine (bench/timing.py)."""
    return min(1000 * (b - a) for a, b in zip(stamps, stamps[1:], strict=False))


def main():
    print("moons demo step (100 samples, MLP 2-16-16-1, hinge, l2 1e-4, SGD), ms per step")
    ours, our_losses = our_steps(OUR_STEPS)
    try:
        import micrograd  # noqa: F401
    except ImportError:
        print("  micrograd is not installed (pip install micrograd==0.1.0): ours alone")
        print(f"  gradserve reference path   {ours:8.1f}")
        return
    theirs, their_losses = micrograd_steps(MICROGRAD_STEPS)
    theirs_no_gc, _ = micrograd_steps(MICROGRAD_STEPS, collect=False)
    print(f"  micrograd 0.1.0            {theirs:8.1f}")
    print(
        f"  micrograd 0.1.0, gc off    {theirs_no_gc:8.1f}   "
        f"(the cyclic collector takes {1 - theirs_no_gc / theirs:.0%} of its step)"
    )
    print(f"  gradserve reference path   {ours:8.1f}   {theirs / ours:.1f}x faster than micrograd")
    drift = max(abs(a - b) / abs(b) for a, b in zip(our_losses, their_losses, strict=False))
    print(
        f"  same losses as micrograd over {len(their_losses)} steps: "
        f"largest relative difference {drift:.1e}"
    )


if __name__ == "__main__":
    main()
