"""/metrics: off without a token, refused without the right one, true after a known campaign."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from sendwell.app import create_app
from sendwell.config import Settings
from tests.dispatch.conftest import World
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
