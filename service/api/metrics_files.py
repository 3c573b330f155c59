"""prometheus_client's multiprocess files, kept from piling up. Each gunicorn worker writes
its counts to files of its own (counter_<pid>.db, histogram_<pid>.db), and a scrape adds up
every file in the directory. A worker that exits (gunicorn recycles them every ~20,000
requests) used to leave its files until the next start, so the directory grew, and each
scrape read more of them. Now gunicorn's master, seeing a worker exit, folds the worker's
files into one archive per kind (counter_archive.db, histogram_archive.db) and deletes
them: the directory holds the live workers' files and those two, however long the API runs,
and every count stays in the sum.

A scrape (in a worker) and a fold (in the master) must not interleave: a scrape that found a
file the fold then deleted would fail, and one that read both the new archive and the file
folded into it would count it twice. Both take a lock on a file in the directory (flock,
across processes): shared for a scrape, exclusive for a fold, which takes milliseconds."""

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

LOCK = ".lock"
FOLDED = ("counter", "histogram")
"""The kinds of file a dead worker's counts are in (its live gauges' files are removed by
prometheus_client's mark_process_dead)."""


@contextmanager
def locked(directory: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(directory, LOCK), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # unlocked when the file closes


def fold(directory: str, pid: int) -> None:
    """Add the files of the exited worker `pid` to the archives, then delete them."""
    with locked(directory, exclusive=True):
        for kind in FOLDED:
            dead = os.path.join(directory, f"{kind}_{pid}.db")
            if not os.path.exists(dead):
                continue
            archive = os.path.join(directory, f"{kind}_archive.db")
            sources = [dead, *([archive] if os.path.exists(archive) else [])]
            # Not accumulated: buckets stay per bucket, as the workers write them.
            merged = MultiProcessCollector.merge(sources, accumulate=False)
            partial = archive + ".partial"  # not *.db: no scrape reads it
            write(partial, merged)
            os.replace(partial, archive)
            os.remove(dead)


def write(path: str, metrics: Iterable[Metric]) -> None:
    """Metrics as prometheus_client's files hold them (the key of mmap_dict.mmap_key)."""
    values = MmapedDict(path)
    try:
        for metric in metrics:
            for sample in metric.samples:
                key = [metric.name, sample.name, sample.labels, metric.documentation]
                values.write_value(json.dumps(key, sort_keys=True), sample.value, 0.0)
    finally:
        values.close()


class LockedCollector(MultiProcessCollector):
    """prometheus_client's collector, reading the files under the shared lock."""

    def collect(self) -> list[Metric]:  # type: ignore[override]
        with locked(self._path, exclusive=False):
            return list(super().collect())
