"""Where the features are wired together: every domain-event subscription, in one place.

The app (`create_app`), every CLI command and the tests call `register()` before any unit of
work runs. The order of the calls is the order subscribers hear an event: the webhook outbox
first, so a mailbox's own webhook is written before the pauses of its campaigns (and their
webhooks), as the outbox's ordering keys expect.
"""

from __future__ import annotations

from sendwell.campaigns import subscribers as campaigns
from sendwell.kit import events
from sendwell.webhooks import subscribers as webhooks


def register() -> None:
    """Subscribe every feature to the events it reacts to (safe to call more than once)."""
    webhooks.register()
    campaigns.register()
    events.mark_wired()
