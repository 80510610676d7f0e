"""/metrics: off without a token, refused without the right one, true after a known campaign,
and counting committed changes only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.mailboxes import repository as mailbox_repo
from sendwell.mailboxes.service import transition
from sendwell.models import MailboxEventKind, MailboxStatus
from tests.dispatch.conftest import SENDER, World
from tests.webhooks.conftest import Receiver, deliverer, register

TOKEN = "metrics-token-0123456789"
TWO_STEPS = [("Hello {{ first_name }}", "Hi.", 0), ("Re: Hello {{ first_name }}", "Again.", 60)]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def scraper(world: World, engine: Engine) -> Iterator[TestClient]:
    """Another process's view: an app over the same database, with a metrics token."""
    settings: Settings = world.settings.model_copy(update={"metrics_token": TOKEN})
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_off_without_a_token(world: World) -> None:
    response = world.client.get("/metrics")
    assert response.status_code == 404


def test_metrics_need_the_token(scraper: TestClient) -> None:
    assert scraper.get("/metrics").status_code == 401
    wrong = scraper.get("/metrics", headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_values_after_a_known_campaign(
    world: World, scraper: TestClient, receiver: Receiver
) -> None:
    register(world, f"{receiver.url}/in", ["campaign.started", "campaign.completed"])
    before = scrape(scraper)
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    campaign_id = world.campaign(TWO_STEPS, emails)
    world.campaign(TWO_STEPS, ["dan@example.com"], start=False)
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()

    midway = scrape(scraper)
    assert midway[("sendwell_messages", (("outcome", "sent"),))] == 3
    assert midway[("sendwell_campaigns", (("status", "active"),))] == 1
    assert midway[("sendwell_campaigns", (("status", "draft"),))] == 1
    assert midway[("sendwell_claim_lag_seconds", ())] == 0

    world.due_now(campaign_id, ago=timedelta(minutes=5))
    overdue = scrape(scraper)
    assert overdue[("sendwell_claim_lag_seconds", ())] >= 300

    dispatcher.run_until_idle()
    receiver.fail_next(1)
    deliverer(world).deliver_due()
    after = scrape(scraper)

    assert after[("sendwell_messages", (("outcome", "sent"),))] == 6
    assert after[("sendwell_messages", (("outcome", "failed"),))] == 0
    assert after[("sendwell_claim_lag_seconds", ())] == 0
    assert after[("sendwell_mailboxes", (("status", "connected"),))] == 1
    assert after[("sendwell_mailboxes", (("status", "reauth_required"),))] == 0
    assert after[("sendwell_campaigns", (("status", "completed"),))] == 1
    assert after[("sendwell_campaigns", (("status", "active"),))] == 0
    assert after[("sendwell_webhook_deliveries", (("outcome", "delivered"),))] == 2
    assert after[("sendwell_webhook_deliveries", (("outcome", "pending"),))] == 0
    requests = ("sendwell_provider_request_seconds_count", (("provider", "google"),))
    assert after[requests] >= before.get(requests, 0) + 6


def test_provider_errors_are_counted_by_type(world: World, scraper: TestClient) -> None:
    key = ("sendwell_provider_errors_total", (("provider", "google"), ("type", "http_429")))
    before = scrape(scraper).get(key, 0)
    world.sandbox.admin("faults", {"mailbox": "ada@gmail.test", "fault": "rate_limit", "count": 1})
    world.campaign(TWO_STEPS, ["ann@example.com"])
    world.dispatcher().run_until_idle()

    assert scrape(scraper)[key] == before + 1


class Refused(Exception):
    """Something later in the unit of work failed."""


def _break_mailbox(world: World, *, then_fail: bool) -> None:
    with session_scope(world.factory) as db:
        mailbox = mailbox_repo.get_mailbox(db, world.mailbox_id())
        assert mailbox is not None
        transition(
            db,
            mailbox,
            MailboxStatus.REAUTH_REQUIRED,
            kind=MailboxEventKind.REAUTH_REQUIRED,
            reason="Access was revoked.",
        )
        if then_fail:
            raise Refused


def test_committed_changes_are_counted_and_rolled_back_ones_are_not(
    world: World, scraper: TestClient
) -> None:
    changes = ("sendwell_mailbox_changes_total", (("kind", "reauth_required"),))
    pauses = ("sendwell_campaign_pauses_total", (("reason", "mailbox_reauth_required"),))
    world.campaign(TWO_STEPS, ["ann@example.com"])
    world.campaign(TWO_STEPS, ["bob@example.com"])
    before = scrape(scraper)

    with pytest.raises(Refused):
        _break_mailbox(world, then_fail=True)
    rolled_back = scrape(scraper)
    assert rolled_back.get(changes, 0) == before.get(changes, 0)
    assert rolled_back.get(pauses, 0) == before.get(pauses, 0)

    _break_mailbox(world, then_fail=False)
    after = scrape(scraper)
    assert after[changes] == before.get(changes, 0) + 1
    assert after[pauses] == before.get(pauses, 0) + 2
    assert after[("sendwell_campaigns", (("status", "paused"),))] == 2


def test_a_reply_counts_a_finished_recipient(world: World, scraper: TestClient) -> None:
    replied = ("sendwell_recipients_finished_total", (("status", "replied"),))
    before = scrape(scraper).get(replied, 0)
    world.campaign(TWO_STEPS, ["ann@example.com"])
    dispatcher = world.dispatcher()
    dispatcher.run_until_idle()
    (sent,) = world.sent()
    world.sandbox.admin(
        "reply", {"mailbox": SENDER, "to_message_id": sent["headers"]["Message-ID"]}
    )
    dispatcher.run_until_idle()

    assert scrape(scraper)[replied] == before + 1
