"""Delivering the outbox: claim a due delivery, post it signed, record the attempt.

Each delivery is leased (committed) before the request, so a stopped process's lease simply
expires and another process tries again; a delivery waits while an earlier one for the same
endpoint and campaign (or mailbox) is still pending, which keeps their order. Failures are
retried with exponential backoff for `retry_for`; an endpoint failing that long is disabled and
the workspace's admins are told.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from sendwell import __version__
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.kit import events
from sendwell.kit.clock import utcnow
from sendwell.kit.logging import get_logger
from sendwell.kit.outbound import OutboundPolicy
from sendwell.kit.signals import webhook_work
from sendwell.kit.tokenbox import TokenBox, TokenBoxError
from sendwell.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from sendwell.webhooks import repository as repo
from sendwell.webhooks.guard import UnsafeDestination, resolve_destination
from sendwell.webhooks.signing import SIGNATURE_HEADER, signature_header

log = get_logger(__name__)
IDLE_WAKE = timedelta(seconds=5)
LEASE_MARGIN = timedelta(seconds=30)
PRUNE_EVERY = timedelta(hours=1)
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    retry_for: timedelta = timedelta(hours=24)
    first_retry: timedelta = timedelta(seconds=30)
    longest_retry: timedelta = timedelta(hours=1)
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    retention: timedelta = timedelta(days=30)

    @property
    def lease(self) -> timedelta:
        # Outlives the longest request, so only a stopped process loses a delivery.
        return timedelta(seconds=self.timeout_seconds * 2) + LEASE_MARGIN


def policy_from(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout_seconds=settings.webhook_timeout_seconds,
        retry_for=timedelta(hours=settings.webhook_retry_hours),
        outbound=settings.outbound_policy,
    )


def retry_delay(attempts: int, policy: DeliveryPolicy, rng: random.Random) -> timedelta:
    """Doubling from `first_retry` up to `longest_retry`, with up to 10 % jitter."""
    base: timedelta = policy.first_retry * (2 ** max(0, attempts - 1))
    return min(base, policy.longest_retry) * (1 + rng.random() / 10)


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    error: str
    duration_ms: int


@dataclass(frozen=True)
class Prepared:
    url: str
    secret: str
    body: bytes
    headers: dict[str, str]


class WebhookDeliverer:
    """Delivers due webhooks; any number may run against PostgreSQL."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        box: TokenBox,
        policy: DeliveryPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.box = box
        self.policy = policy
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.wake = threading.Event()
        self.http = httpx.Client(
            timeout=policy.timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            # One connection per request: each is pinned to the address that was checked.
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._pruned_at: datetime | None = None

    def close(self) -> None:
        self.http.close()

    def deliver_due(self) -> int:
        """Deliver (or try) everything due now; returns how many attempts were made."""
        made = 0
        while True:
            now = utcnow()
            with session_scope(self.factory) as db:
                delivery_id = repo.claim_next_due(db, now, now + self.policy.lease)
            if delivery_id is None:
                return made
            self.attempt(delivery_id)
            made += 1

    def attempt(self, delivery_id: int) -> None:
        """One try at a claimed delivery, recorded with what the endpoint answered."""
        with session_scope(self.factory) as db:
            prepared = self._prepare(db, delivery_id)
        if prepared is None:
            return
        self._record(delivery_id, self._post(prepared))

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until stopped, sleeping until the next retry is due or until woken."""
        webhook_work.register(self.wake)
        try:
            while not stop.is_set():
                try:
                    self.deliver_due()
                    self._prune()
                    pause = self._time_to_next()
                except Exception:
                    log.exception("job_failed", name="webhook_delivery")
                    pause = IDLE_WAKE.total_seconds()
                self.wake.wait(pause)
                self.wake.clear()
        finally:
            webhook_work.unregister(self.wake)

    def _time_to_next(self) -> float:
        with session_scope(self.factory) as db:
            due = repo.next_attempt_at(db)
        idle = IDLE_WAKE.total_seconds()
        if due is None:
            return idle
        return min(idle, max(0.05, (due - utcnow()).total_seconds()))

    def _prune(self) -> None:
        now = utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        with session_scope(self.factory) as db:
            repo.delete_events_before(db, now - self.policy.retention)

    def _prepare(self, db: Session, delivery_id: int) -> Prepared | None:
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status is not DeliveryStatus.PENDING:
            return None
        event = db.get(WebhookEvent, delivery.event_id)
        endpoint = db.get(WebhookEndpoint, delivery.endpoint_id)
        if event is None or endpoint is None:
            return None
        body = json.dumps(
            {
                "id": f"evt_{event.id}",
                "type": event.type,
                "created_at": event.created_at.isoformat(),
                "data": json.loads(event.payload),
            },
            separators=(",", ":"),
        ).encode()
        try:
            secret = self.box.open(endpoint.secret)
        except TokenBoxError as error:
            secret = ""
            log.warning("webhook_secret_unreadable", endpoint_id=endpoint.id, reason=str(error))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Sendwell-Webhooks/{__version__}",
            "Sendwell-Event": event.type,
            "Sendwell-Event-Id": f"evt_{event.id}",
            "Sendwell-Delivery": str(delivery.id),
        }
        return Prepared(endpoint.url, secret, body, headers)

    def _post(self, prepared: Prepared) -> Outcome:
        started = time.perf_counter()

        def outcome(succeeded: bool, status_code: int | None, error: str) -> Outcome:
            elapsed = round((time.perf_counter() - started) * 1000)
            return Outcome(succeeded, status_code, error[:MAX_ERROR_LENGTH], elapsed)

        if not prepared.secret:
            return outcome(False, None, "The signing secret cannot be decrypted; nothing sent.")
        try:
            destination = resolve_destination(prepared.url, self.policy.outbound)
        except UnsafeDestination as error:
            return outcome(False, None, f"Refused: {error.message}")
        headers = {
            **prepared.headers,
            "Host": destination.host_header(),
            SIGNATURE_HEADER: signature_header(prepared.secret, prepared.body, int(time.time())),
        }
        extensions = {"sni_hostname": destination.host} if prepared.url.startswith("https") else {}
        try:
            response = self.http.post(
                destination.pinned_url(),
                content=prepared.body,
                headers=headers,
                extensions=extensions,
            )
        except httpx.TimeoutException:
            return outcome(
                False, None, f"No answer within {self.policy.timeout_seconds:g} seconds."
            )
        except httpx.HTTPError as error:
            return outcome(False, None, f"Could not connect: {type(error).__name__}.")
        code = response.status_code
        if 200 <= code < 300:
            return outcome(True, code, "")
        if response.is_redirect:
            where = response.headers.get("location", "")
            return outcome(
                False, code, f"Answered HTTP {code} to {where}; redirects are not followed."
            )
        return outcome(False, code, f"Answered HTTP {code}.")

    def _record(self, delivery_id: int, outcome: Outcome) -> None:
        """Save the attempt; on failure schedule the retry, give up, or disable the endpoint."""
        now = utcnow()
        with session_scope(self.factory) as db:
            delivery = db.get(WebhookDelivery, delivery_id)
            endpoint = db.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
            if delivery is None or endpoint is None:
                return None
            db.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    succeeded=outcome.succeeded,
                )
            )
            delivery.attempts += 1
            delivery.lease_until = None
            log.info(
                "webhook_attempt",
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                succeeded=outcome.succeeded,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
            )
            if outcome.succeeded:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                delivery.last_error = ""
                endpoint.failing_since = None
                return None
            delivery.last_error = outcome.error
            endpoint.failing_since = endpoint.failing_since or now
            if now - endpoint.failing_since >= self.policy.retry_for:
                self._disable(db, endpoint, delivery, now)
                return
            # Measured from the first try, so a delivery never gives up before an endpoint
            # that failed all along is disabled.
            first_try = repo.first_attempt_at(db, delivery.id) or now
            if now - first_try >= self.policy.retry_for:
                delivery.status = DeliveryStatus.FAILED
                return None
            delivery.next_attempt_at = now + retry_delay(delivery.attempts, self.policy, self.rng)
            return None

    def _disable(
        self, db: Session, endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime
    ) -> None:
        """Switch the endpoint off; its admins are told (`WebhookEndpointDisabled`)."""
        since = endpoint.failing_since or now
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = (
            f"Disabled automatically: every delivery has failed since {since:%Y-%m-%d %H:%M} "
            f"UTC. Last error: {delivery.last_error}"
        )
        delivery.status = DeliveryStatus.FAILED
        log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.id)
        events.publish(
            db,
            events.WebhookEndpointDisabled(
                workspace_id=endpoint.workspace_id,
                url=endpoint.url,
                reason=endpoint.disabled_reason,
            ),
        )
