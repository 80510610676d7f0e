"""Where the features are wired together: every domain-event subscription and every
background job, in one place.

The app (`create_app`), every CLI command and the tests call `register()` before any unit of
work runs. The order of the calls is the order subscribers hear an event: the webhook outbox
first, so a mailbox's own webhook is written before the pauses of its campaigns (and their
webhooks), as the outbox's ordering keys expect; the notification emails last, so a broken
mailbox's email counts the campaigns its break has just paused.

`jobs()` collects the periodic work each feature declares next to its code; `sendwell serve`
(the app's lifespan) and `sendwell worker` start the kinds they run from it.
"""

from __future__ import annotations

from sendwell.campaigns import subscribers as campaigns
from sendwell.dispatch import runner as dispatch_runner
from sendwell.kit import events
from sendwell.kit.jobs import JobRegistry
from sendwell.mailboxes import tasks as mailbox_tasks
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.metrics import subscribers as metrics
from sendwell.notifications import subscribers as notifications
from sendwell.webhooks import runner as webhook_runner
from sendwell.webhooks import subscribers as webhooks


def register() -> None:
    """Subscribe every feature to the events it reacts to (safe to call more than once)."""
    webhooks.register()
    campaigns.register()
    notifications.register()
    metrics.register()
    events.mark_wired()


def jobs() -> JobRegistry[ProviderServices]:
    """Every feature's background jobs, in the order a process starts them."""
    registry = JobRegistry[ProviderServices]()
    mailbox_tasks.register_jobs(registry)
    dispatch_runner.register_jobs(registry)
    webhook_runner.register_jobs(registry)
    return registry
