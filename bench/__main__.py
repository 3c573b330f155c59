"""`python -m bench [topic ...]`: run every bench/bench_<topic>.py, or the ones named."""

import importlib
import pkgutil
import sys
import time

import bench


def main(argv):
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
        importlib.import_module(f"bench.bench_{topic}").main()
        print(f"({topic}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
