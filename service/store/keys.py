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

    def changes_channel(self) -> str:
        """The pub/sub channel told of every change of a job or graph: its message is
        `changed_key` of what changed (the API's notifier wakes the requests waiting on it)."""
        return f"{self.prefix}:changes"

    @staticmethod
    def changed_job(job_id: str) -> str:
        """What a job's change publishes on `changes_channel`."""
        return f"job:{job_id}"

    @staticmethod
    def changed_graph(graph_id: str) -> str:
        """What a graph's change publishes on `changes_channel`."""
        return f"graph:{graph_id}"

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

    def tenant_jobs(self, tenant: str, status: str | None = None) -> str:
        """A tenant's own index of its jobs, or of its jobs in one status, scored by creation
        time. A job hash keeps the first in its field `tenant_jobs`; the scripts append
        `:<status>` to it, as here, when the job's status changes."""
        base = f"{self.prefix}:tenant:{tenant}:jobs"
        return base if status is None else f"{base}:{status}"

    def webhook_outcomes(self) -> str:
        """A hash: webhook delivery attempts counted by outcome, for GET /metrics."""
        return f"{self.prefix}:metrics:webhook-deliveries"

    def expiry(self) -> str:
        """Finished jobs, scored by when Redis deletes them (ms): the reaper sweeps the
        indexes of the ones gone."""
        return f"{self.prefix}:expiry"

    def expiry_tenants(self) -> str:
        """A hash: for each job in the expiry index that has a tenant, its `tenant_jobs`;
        the sweep needs it after Redis has deleted the job hash that held it."""
        return f"{self.prefix}:expiry:tenants"

    def retention_adopted(self) -> str:
        """Set once the finished jobs stored before retention existed were given theirs."""
        return f"{self.prefix}:retention-adopted"

    def model(self, model_id: str) -> str:
        """A model: a hash of `doc` (its JSON text) and `tenant` (its job's)."""
        return f"{self.prefix}:model:{model_id}"

    def graph(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}"

    def graph_doc(self, graph_id: str) -> str:
        return f"{self.prefix}:graph:{graph_id}:doc"

    def idempotency(self, tenant: str, key: str) -> str:
        """A tenant's Idempotency-Key (two tenants' equal keys are two keys)."""
        digest = hashlib.sha256(key.encode()).hexdigest()  # any header value, a fixed length
        return f"{self.prefix}:tenant:{tenant}:idempotency:{digest}"

    def api_key(self, key_id: str) -> str:
        """An API key's record (a hash: `hash`, `tenant`, `created_at`, `revoked_at`)."""
        return f"{self.prefix}:apikey:{key_id}"

    def api_keys(self) -> str:
        """The index of every API key's id, scored by creation time."""
        return f"{self.prefix}:apikeys"

    def rate_limits(self) -> str:
        """The prefix of the rate limiter's counters (moving windows, one list per API key
        or address and limit, expiring with their window: store/ratelimits.py)."""
        return f"{self.prefix}:ratelimit"

    def rate_limit(self, caller: str, budget: str) -> str:
        """One caller's moving window of one budget (`<scope>/<size>/<period>`)."""
        return f"{self.rate_limits()}:{caller}/{budget}"

    def webhook_secret(self, tenant: str) -> str:
        """A tenant's webhook signing secret."""
        return f"{self.prefix}:tenant:{tenant}:webhook-secret"

    def webhook_deliveries(self, job_id: str) -> str:
        """A job's webhook deliveries: a hash of delivery id -> its record (JSON)."""
        return f"{self.prefix}:job:{job_id}:webhooks"

    def webhook_sending(self, job_id: str) -> str:
        """Held while a sender posts one of the job's deliveries: the member of the due set
        it claimed, with the sender's lease as its time to live (one at a time per job)."""
        return f"{self.prefix}:job:{job_id}:webhook-sending"

    def webhooks_due(self) -> str:
        """Every pending delivery, `<job id> <delivery id>`, scored by when its next attempt
        is due (ms); a claimed one by when its sender's lease on it ends."""
        return f"{self.prefix}:webhooks:due"
