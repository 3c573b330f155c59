"""`python -m bench [--quick] [topic ...]`: run every bench/bench_<topic>.py, or the ones
named. `--quick` (GRADSERVE_BENCH_QUICK=1 for the topics) asks the topics that can for a
shorter run (fewer rounds; noisier figures).

Every figure is printed by bench/report.py: the figure, its value, its baseline measured in
the same run, their ratio and the target, if any.

Each topic runs in a fresh interpreter: what one leaves on the heap changes what the
cyclic garbage collector costs the next (micrograd's step, most of all)."""

import os
import pkgutil
import subprocess
import sys
import time

import bench


def main(argv):
    env = dict(os.environ)
    if "--quick" in argv:
        argv = [a for a in argv if a != "--quick"]
        env["GRADSERVE_BENCH_QUICK"] = "1"
    topics = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )
    unknown = set(argv) - set(topics)
    if unknown:
        sys.exit(f"unknown bench {', '.join(sorted(unknown))}; there are: {', '.join(topics)}")
    for topic in argv or topics:
        print(f"\n## {topic}", flush=True)
        started = time.perf_counter()
        code = f"import bench.bench_{topic} as b; b.main()"
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        print(f"({topic}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
