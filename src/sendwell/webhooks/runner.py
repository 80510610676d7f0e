"""Running webhook delivery: a thread in `sendwell serve` (when it sends) and `sendwell worker`."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.kit.jobs import JobKind, JobRegistry
from sendwell.kit.tokenbox import TokenBox
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.webhooks.delivery import WebhookDeliverer, policy_from


def build_deliverer(settings: Settings, factory: sessionmaker[Session]) -> WebhookDeliverer:
    return WebhookDeliverer(factory, TokenBox(settings.token_key_list), policy_from(settings))


class DelivererThread:
    """A webhook deliverer in a daemon thread."""

    def __init__(self, deliverer: WebhookDeliverer) -> None:
        self.deliverer = deliverer
        self.stop_event = threading.Event()
        self._thread = threading.Thread(
            target=deliverer.run_forever, args=(self.stop_event,), name="webhooks", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.deliverer.wake.set()
        self._thread.join(timeout=30)
        self.deliverer.close()


def register_jobs(registry: JobRegistry[ProviderServices]) -> None:
    """Webhook delivery: post the outbox's due deliveries, in order per endpoint and key."""
    registry.add("webhook_delivery", kind=JobKind.SENDING, build=deliverer_job)


def deliverer_job(
    settings: Settings, factory: sessionmaker[Session], _conn: ProviderServices
) -> DelivererThread:
    return DelivererThread(build_deliverer(settings, factory))
