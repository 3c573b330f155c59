"""Time-boxed repetition: the best of several runs is the least noisy figure here."""

import time


def best_of(fn, repeat=5, budget=10.0):
    """The fastest of up to `repeat` calls of fn(), stopping early once `budget` s are spent."""
    best, spent = float("inf"), 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def per_call(fn, min_time=0.5):
    """Seconds per call of a fast fn(), averaged over enough calls to fill min_time."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_time:
        fn()
        calls += 1
    return (time.perf_counter() - started) / calls
