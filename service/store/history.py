"""A job's history: JSON batches of steps, each continuing the one before exactly."""

import json
from collections.abc import Iterable
from typing import Any

Json = dict[str, Any]


class HistoryMismatch(Exception):
    """A history batch that does not continue the stored history: `recorded` steps are stored.

    Fewer than the batch assumes (`behind`): Redis lost writes it had acknowledged (a crash
    between two syncs of its append-only file); the run must start again from the stored
    checkpoint. More: an earlier write the writer thought failed had been applied."""

    def __init__(self, recorded: int, behind: bool) -> None:
        super().__init__(f"the stored history has {recorded} steps")
        self.recorded, self.behind = recorded, behind


def empty_batch() -> Json:
    return {"step": [], "loss": [], "accuracy": []}


def join_batches(batches: Iterable[bytes], since: int = 0) -> Json:
    """The stored batches as one history, from step `since` on."""
    joined = empty_batch()
    for raw in batches:
        batch = json.loads(raw)
        if batch["step"] and batch["step"][-1] >= since:
            first = next(i for i, step in enumerate(batch["step"]) if step >= since)
            for name, values in joined.items():
                values += batch[name][first:]
    return joined


def cut(batch: Json, recorded: int) -> Json:
    """The batch without the steps before `recorded` (which Redis already has)."""
    first = batch["step"][0]
    return {name: values[recorded - first :] for name, values in batch.items()}
