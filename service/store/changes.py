"""What the store writes to a job, every part named: a `Change` is one call of
scripts.UPDATE; a `Report` is what a run writes (its steps, where it stands, maybe a
checkpoint or its end), turned into a Change fenced on the run's token."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..strictjson import dumps
from . import checkpoint
from .ids import now

Json = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One guarded change of a job: applied only while the job is in an `allowed` status
    (and, with `tenant`, that tenant's; with `token`, still that run's), all of it or
    nothing."""

    allowed: tuple[str, ...]
    to: str | None = None  # the new status (None: unchanged)
    tenant: str | None = None  # whose job it must be (None: anyone's; the workers' side)
    token: str | None = None  # the run that must still hold the job (None: any)
    history: Json | None = None  # a batch of steps, which must continue the stored history
    checkpoint: Json | None = None  # the latest checkpoint (stored binary, store.checkpoint)
    model: Json | None = None  # the model document, stored under its id
    publish_cancel: bool = False  # tell a running job it was cancelled
    fields: Mapping[str, Any] = field(default_factory=dict)  # job fields, stored as JSON
    hidden: Mapping[str, Any] = field(default_factory=dict)  # hidden fields, stored as text
    webhook: str | None = None  # a webhook event now due (progress), if the job asks for it

    def script_args(self, job_id: str, cancel_channel: str) -> list[str | bytes]:
        """ARGV of scripts.UPDATE (the script documents them)."""
        steps = self.history["step"] if self.history else []
        named: Json = {"allowed": list(self.allowed)}
        if self.to:
            named["to"] = self.to
        if self.tenant:
            named["tenant"] = self.tenant
        if self.token:
            named["token"] = self.token
        if steps:
            named.update(first_step=steps[0], steps=len(steps))
        if self.publish_cancel:
            named["publish"] = cancel_channel
        if self.webhook:
            named["webhook"] = self.webhook
        named["set"] = {
            **{name: dumps(value) for name, value in self.fields.items()},
            **{name: str(value) for name, value in self.hidden.items()},
        }
        return [
            job_id,
            dumps(named),
            dumps(self.history) if steps else "",
            checkpoint.encode(self.checkpoint) if self.checkpoint else "",
            dumps(self.model) if self.model else "",
        ]


@dataclass(frozen=True)
class Report:
    """What a run writes in one call: the steps since its last write, its progress and
    metrics, and maybe a checkpoint (with the training time it stands for), or its end: a
    model (succeeded) or a problem (failed)."""

    history: Json
    progress: Json
    metrics: Json
    checkpoint: Json | None = None
    trained_seconds: float | None = None
    model: Json | None = None
    error: Json | None = None
    webhook: str | None = None  # a webhook event due with it (progress)

    def change(self, token: str) -> Change:
        """The Change that writes this report for the run with `token`."""
        fields: Json = {"progress": self.progress, "metrics": self.metrics}
        to = None
        if self.model is not None:
            to = "succeeded"
            fields.update(model_id=self.model["id"], finished_at=now())
        elif self.error is not None:
            to = "failed"
            fields.update(error=self.error, finished_at=now())
        seconds = {} if self.trained_seconds is None else {"trained_seconds": self.trained_seconds}
        return Change(
            ("running",),
            to=to,
            token=token,
            history=self.history,
            checkpoint=self.checkpoint,
            model=self.model,
            fields=fields,
            hidden=seconds,
            webhook=self.webhook,
        )
