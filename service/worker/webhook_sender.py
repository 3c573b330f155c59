"""The webhook sender: WEBHOOK_SENDERS threads in each worker's main process (never in a
work-horse: training only marks a delivery due, service.store.deliveries). Each claims one
due delivery at a time under a lease (of a job none of whose deliveries another sender
holds, its oldest due one: a job's deliveries go one at a time, in order), checks its URL
again (service.webhook_targets), signs the job resource per Standard Webhooks with the
tenant's secret, POSTs it (service.worker.webhook_http) and records the attempt: a 2xx
settles it `delivered`; anything else (another status, a redirect, a timeout, a refused or
unreachable target) is retried after the next delay of WEBHOOK_RETRY_SCHEDULE, and after
the last it is `failed`."""

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any

import redis
from standardwebhooks import Webhook

from schemas import JobSchema

from ..store import WebhookSecrets
from ..store.deliveries import Claim, Due, WebhookDeliveries
from ..store.metrics import count_webhook_delivery
from ..strictjson import dumps
from ..webhook_targets import RefusedTarget, addresses, allow_private, parse_url
from .webhook_http import describe, post

log = logging.getLogger(__name__)
TERMINAL = ("succeeded", "failed", "cancelled")
USER_AGENT = "gradserve-webhooks/1"


def retry_schedule(value: Any) -> tuple[float, ...]:
    """WEBHOOK_RETRY_SCHEDULE as seconds: a list of numbers, one number, or a string of
    numbers joined by commas (empty: no retry)."""
    if isinstance(value, int | float):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part for part in value.replace(" ", "").split(",") if part]
    else:
        items = list(value)
    delays = tuple(float(item) for item in items)
    if any(delay < 0 for delay in delays):
        raise ValueError(f"WEBHOOK_RETRY_SCHEDULE must be seconds of at least 0, not {value!r}")
    return delays


def signed_headers(secret: str, delivery_id: str, event: str, body: str, at: datetime) -> dict:
    """The Standard Webhooks headers of one attempt, and which event it is (`webhook-event`)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery_id, at, body),
        "webhook-event": event,
    }


class WebhookSender:
    def __init__(self, connection: redis.Redis, config: Mapping[str, Any]) -> None:
        self.connection = connection
        self.deliveries = WebhookDeliveries(connection)
        self.secrets = WebhookSecrets(connection)
        self.schedule = retry_schedule(config["WEBHOOK_RETRY_SCHEDULE"])
        self.allow_private = allow_private(config["WEBHOOK_ALLOW_PRIVATE"])
        self.connect_timeout = float(config["WEBHOOK_CONNECT_TIMEOUT"])
        self.read_timeout = float(config["WEBHOOK_READ_TIMEOUT"])
        self.lease_ms = round(float(config["WEBHOOK_LEASE"]) * 1000)
        self.poll = float(config["WEBHOOK_POLL_INTERVAL"])
        self.threads = int(config["WEBHOOK_SENDERS"])
        self._stopped = threading.Event()
        self._running: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"webhooks-{i}", daemon=True)
            thread.start()
            self._running.append(thread)

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        for thread in self._running:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                sent = self.send_due()
            except redis.RedisError as exc:
                log.warning("webhooks: Redis error (%s); trying again", exc)
                sent = False
            except Exception:
                log.exception("webhooks: sending failed")
                sent = False
            if not sent:
                self._stopped.wait(self.poll)

    def send_due(self) -> bool:
        """Claim one due delivery and make an attempt; False if none was due."""
        claims = self.deliveries.claim(self.lease_ms)
        for claim in claims:
            self.attempt(claim)
        return bool(claims)

    def attempt(self, claim: Claim) -> None:
        due = self.deliveries.load(claim)
        if due is None or due.record.get("status") != "pending":
            self.deliveries.settle(claim, None)  # the job (or the record) is gone
            return
        record = due.record
        if record["event"] == "progress" and due.current_status in TERMINAL:
            record.update(status="superseded", next_ms=None)  # `completed` says the rest
            self.deliveries.settle(claim, record)
            return
        began, at_ms = time.monotonic(), int(time.time() * 1000)
        http_status, error = self._post(due)
        elapsed_ms = (time.monotonic() - began) * 1000
        record["attempts"].append(
            {
                "at_ms": at_ms,
                "http_status": http_status,
                "error": error,
                "duration_ms": round(elapsed_ms, 1),
            }
        )
        tried = len(record["attempts"])
        next_ms = None
        if http_status is not None and 200 <= http_status < 300:
            record["status"] = "delivered"
        elif tried > len(self.schedule):
            record["status"] = "failed"
        else:  # on Redis's clock, as the due set is
            next_ms = claim.now_ms + round(elapsed_ms + self.schedule[tried - 1] * 1000)
        record["next_ms"] = next_ms
        if not self.deliveries.settle(claim, record, next_ms):
            log.warning("webhooks: delivery %s was taken over or deleted", claim.delivery_id)
            return
        refused = error is not None and error.startswith("refused")
        outcome = "refused" if refused else "retrying" if next_ms else record["status"]
        count_webhook_delivery(self.connection, outcome)  # GET /metrics

    def _post(self, due: Due) -> tuple[int | None, str | None]:
        """One attempt: (the HTTP status, or None) and an error text (None on a 2xx)."""
        delivery_id, event = due.record["id"], due.record["event"]
        try:
            url = parse_url(due.job["spec"]["webhook"]["url"])
            targets = addresses(url, self.allow_private)
            body = dumps(JobSchema().dump(due.job))
            at = datetime.now(UTC)
            headers = signed_headers(self.secrets.get(due.tenant), delivery_id, event, body, at)
            status = post(
                url, targets, body.encode(), headers, self.connect_timeout, self.read_timeout
            )
        except RefusedTarget as exc:
            return None, f"refused: webhook/url {exc}"
        except (OSError, HTTPException, UnicodeError) as exc:
            return None, describe(exc)
        except Exception as exc:  # a bug here must not leave the delivery claimed forever
            log.exception("webhooks: delivery %s", delivery_id)
            return None, f"internal error: {describe(exc)}"
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}" + (" (redirects are not followed)" if status < 400 else "")
