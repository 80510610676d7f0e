"""Running webhook delivery: a thread in `sendwell serve` (when it sends) and `sendwell worker`."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.kit.jobs import JobKind, JobRegistry
from sendwell.kit.notices import parse_smtp_url, send_notice
from sendwell.kit.tokenbox import TokenBox
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.webhooks.delivery import DisabledNotice, WebhookDeliverer, policy_from


def build_deliverer(settings: Settings, factory: sessionmaker[Session]) -> WebhookDeliverer:
    return WebhookDeliverer(
        factory,
        TokenBox(settings.token_key_list),
        policy_from(settings),
        on_disabled=email_admins(settings) if settings.smtp_url else None,
    )


def email_admins(settings: Settings) -> DisabledNotice:
    """Tell every admin by email that an endpoint was disabled."""
    target = parse_smtp_url(settings.smtp_url)

    def tell(admins: list[str], url: str, why: str) -> None:
        for address in admins:
            send_notice(
                target,
                address,
                "Sendwell disabled a webhook endpoint",
                f"Sendwell stopped sending webhooks to {url}.\n\n{why}\n\n"
                "Fix the endpoint, then enable it again on the Webhooks tab (events that happen "
                "while it is switched off are not sent to it): "
                f"{settings.base_url}/messaging/webhooks\n",
                timeout=10.0,
            )

    return tell


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
