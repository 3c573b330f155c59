"""Everything gradserve keeps in Redis, and the only place its keys and hash fields are
spelled: jobs (`JobStore`), graph evaluations (`GraphStore`), API keys (`ApiKeys`), webhook
secrets (`WebhookSecrets`), the hand-backs and the reaper's queries (`requeue`), the Lua
scripts that guard every change of a job, and the rq queue with the connection every process
opens."""

from .apikeys import LOCAL_TENANT, ApiKey, ApiKeys
from .changes import Change, Report
from .graphs import GraphStore
from .history import HistoryMismatch
from .jobs import JobStore, Run
from .keys import Keys
from .ratelimits import Budget, RateCounts, Window
from .webhooks import WebhookSecrets

__all__ = [
    "Budget",
    "RateCounts",
    "Window",
    "LOCAL_TENANT",
    "ApiKey",
    "ApiKeys",
    "Change",
    "GraphStore",
    "HistoryMismatch",
    "JobStore",
    "Keys",
    "Report",
    "Run",
    "WebhookSecrets",
]
