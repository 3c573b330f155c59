"""The scalar engine against micrograd 0.1.0: the README expression, and a 1M-node chain."""

import sys
import threading

from bench.timing import best_of, per_call
from engine import Value
from engine.value import paused_gc
from tests.test_value import micrograd_readme_expression  # the figures tests check

CHAIN = 1_000_000


def readme_expression(value_class):
    g = micrograd_readme_expression(value_class(-4.0), value_class(2.0))
    g.backward()
    return g


def chain(value_class):
    x = value_class(0.5)
    y = x
    for _ in range(CHAIN):
        y = y + 1.0
    return y


def in_big_stack(fn):
    """Run fn in a thread with a 1 GiB stack: micrograd's recursive sort needs it."""
    result = {}
    threading.stack_size(1 << 30)
    sys.setrecursionlimit(10**7)
    worker = threading.Thread(target=lambda: result.setdefault("seconds", best_of(fn, 1)))
    worker.start()
    worker.join()
    threading.stack_size(0)
    return result.get("seconds")


def main():
    try:
        from micrograd.engine import Value as MicrogradValue
    except ImportError:
        MicrogradValue = None
        print("micrograd is not installed (pip install micrograd==0.1.0): ours alone")

    ours = per_call(lambda: readme_expression(Value))
    print(f"README expression, forward+backward: ours {ours * 1e6:.1f} us per call")
    if MicrogradValue:
        theirs = per_call(lambda: readme_expression(MicrogradValue))
        print(f"  micrograd {theirs * 1e6:.1f} us per call; ours is {theirs / ours:.2f}x as fast")

    def ours_chain():
        with paused_gc():
            chain(Value).backward()

    built = {}

    def ours_backward_only():
        built["y"].backward()

    with paused_gc():
        built["y"] = chain(Value)
    backward = best_of(ours_backward_only, 3)
    whole = best_of(ours_chain, 3)
    print(f"1M-node chain: ours backward {backward:.2f} s, build+backward {whole:.2f} s")
    if MicrogradValue:
        theirs = in_big_stack(lambda: chain(MicrogradValue).backward())
        print(
            f"  micrograd build+backward {theirs:.2f} s (in a 1 GiB-stack thread; "
            f"RecursionError otherwise); ours is {theirs / whole:.2f}x as fast"
        )
