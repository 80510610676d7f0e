"""Running dispatchers: in `sendwell serve` beside the web app, or alone in `sendwell worker`."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from sendwell.config import Settings
from sendwell.dispatch.engine import Dispatcher, DispatchPolicy
from sendwell.dispatch.outcomes import UnsubscribeLinks
from sendwell.kit import signals
from sendwell.kit.jobs import JobKind, JobRegistry
from sendwell.mailboxes.provider_services import ProviderServices

LEASE_MARGIN = timedelta(seconds=30)


def policy_from(settings: Settings) -> DispatchPolicy:
    return DispatchPolicy(
        # A claim's lease outlives the longest provider call, so only a dead worker loses it.
        lease=timedelta(seconds=settings.provider_timeout_seconds * 2) + LEASE_MARGIN,
        inbound_interval=timedelta(seconds=settings.inbound_poll_seconds),
        inbound_quiet_interval=timedelta(seconds=settings.inbound_quiet_poll_seconds),
        settle_grace=timedelta(seconds=settings.settle_grace_seconds),
        calls_in_flight=settings.calls_in_flight,
    )


def build_dispatcher(
    settings: Settings,
    factory: sessionmaker[Session],
    services: ProviderServices,
    *,
    worker_id: str | None = None,
) -> Dispatcher:
    return Dispatcher(
        factory,
        services,
        policy_from(settings),
        unsubscribe=UnsubscribeLinks(
            settings.base_url, settings.secret_key, settings.unsubscribe_lifetime
        ),
        worker_id=worker_id,
    )


class DispatcherThread:
    """A dispatcher in a daemon thread, woken by commits here and by those of other processes
    (NOTIFY on PostgreSQL, the wake file on SQLite: `signals.listen_for_notifications`)."""

    def __init__(self, dispatcher: Dispatcher, database_url: str) -> None:
        self.dispatcher = dispatcher
        self.database_url = database_url
        self.stop_event = threading.Event()
        self._thread = threading.Thread(
            target=dispatcher.run_forever, args=(self.stop_event,), name="dispatcher", daemon=True
        )
        self._listener: threading.Thread | None = None

    def start(self) -> None:
        self._listener = signals.listen_for_notifications(
            self.database_url, signals.dispatch_work, self.dispatcher.wake, self.stop_event
        )
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.dispatcher.wake.set()
        self._thread.join(timeout=30)

    def finish(self) -> None:
        """Stop after the current pass, however long it takes (a worker's graceful end)."""
        self.stop_event.set()
        self.dispatcher.wake.set()
        self._thread.join()
        if self._listener is not None:
            self._listener.join(timeout=5)


def register_jobs(registry: JobRegistry[ProviderServices]) -> None:
    """The sending engine: settle unknown outcomes, read replies and bounces, claim and send."""
    registry.add("dispatcher", kind=JobKind.SENDING, build=dispatcher_job)


def dispatcher_job(
    settings: Settings, factory: sessionmaker[Session], services: ProviderServices
) -> DispatcherThread:
    return DispatcherThread(build_dispatcher(settings, factory, services), settings.sqlalchemy_url)
