"""Redis key names (after rq's `Job.key_for`): nothing else builds them."""

import hashlib


class Keys:
    def __init__(self, prefix: str = "gradserve") -> None:
        self.prefix = prefix

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def history(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:history"

    def checkpoint(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:checkpoint"

    def data(self, job_id: str) -> str:
        """A job's inline training data, as the canonical JSON text its summary hashes."""
        return f"{self.prefix}:job:{job_id}:data"

    def cancel_channel(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:cancel"

    def lease(self, job_id: str) -> str:
        """A running job's lease: `<attempt> <run token> <owner>`, with a time to live."""
        return f"{self.prefix}:job:{job_id}:lease"

    def stranded(self, job_id: str) -> str:
        """When a queued job's rq job was first seen missing from the queue."""
        return f"{self.prefix}:job:{job_id}:stranded"

    def reaper_turn(self) -> str:
        """Held by the worker whose reaper makes the current pass."""
        return f"{self.prefix}:reaper"

    def jobs(self, status: str | None = None) -> str:
        """The index of all jobs, or of the jobs in one status, scored by creation time."""
        return f"{self.prefix}:jobs" if status is None else f"{self.prefix}:jobs:{status}"

    def expiry(self) -> str:
        """Finished jobs, scored by when Redis deletes them (ms): the reaper sweeps the
        indexes of the ones gone."""
        return f"{self.prefix}:expiry"

    def retention_adopted(self) -> str:
        """Set once the finished jobs stored before retention existed were given theirs."""
        return f"{self.prefix}:retention-adopted"

    def model(self, model_id: str) -> str:
        return f"{self.prefix}:model:{model_id}"

    def graph(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}"

    def graph_doc(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}:doc"

    def idempotency(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()  # any header value, a fixed length
        return f"{self.prefix}:idempotency:{digest}"
