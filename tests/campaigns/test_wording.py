"""Human wording: schedules, activity titles, account settings changes, current time-zone
names, and a chart whose step colours do not read as errors."""

from __future__ import annotations

import html
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from sendwell.campaigns.chart import daily_sends_chart
from sendwell.campaigns.schedule import common_time_zones, days_words
from sendwell.campaigns.wording import event_words
from tests.campaigns.test_web import connected_mailbox, editor_post
from tests.conftest import create_first_account, csrf_from

ERROR_REDS = {"#e5484d", "#d92d20", "#f04438", "#ff0000", "#dc2626"}


def test_days_read_as_people_write_them() -> None:
    assert days_words("mon,tue,wed") == "Mon, Tue, Wed"
    assert days_words(("sat", "sun")) == "Sat, Sun"
    assert days_words("") == "every day"


def test_the_time_zone_list_has_current_names_only() -> None:
    zones = common_time_zones()
    assert {"Europe/Paris", "America/Los_Angeles", "Asia/Kolkata", "Europe/Amsterdam"} <= set(zones)
    for alias in ("US/Pacific", "Asia/Calcutta", "Europe/Kiev", "GB", "Etc/GMT+5", "UTC"):
        assert alias not in zones
    assert zones == sorted(zones)
    # A campaign saved with an old alias keeps it: the editor's list still offers it.
    assert "US/Pacific" in common_time_zones("US/Pacific")
    assert "Not/AZone" not in common_time_zones("Not/AZone")


def test_activity_titles_are_words() -> None:
    assert event_words("recipient_held") == "Recipient held after an automatic reply"
    assert event_words("restored") == "Restored"
    assert event_words("something_new") == "Something new"


def test_the_chart_has_a_legend_and_no_red_step() -> None:
    rows = [("2026-12-01", step, 2) for step in range(1, 8)]
    chart = daily_sends_chart(rows, today=date(2026, 12, 4))
    assert [step for step, _colour in chart.legend] == list(range(1, 8))
    colours = {colour.lower() for _step, colour in chart.legend}
    assert not colours & ERROR_REDS
    assert {bar.colour for bar in chart.bars} == colours


def test_the_campaign_page_and_account_history_read_as_sentences(
    client: TestClient, db: Session
) -> None:
    create_first_account(client)
    mailbox = connected_mailbox(db)
    created = html.unescape(editor_post(client, "/campaigns/new", mailbox.id).text)
    assert "Schedule: Mon, Wed, 09:00\u201317:00 (Europe/Paris)." in created
    assert "<strong>Created</strong>" in created
    page = client.get(f"/mailboxes/{mailbox.id}").text
    client.post(
        f"/mailboxes/{mailbox.id}/settings",
        data={
            "csrftoken": csrf_from(page),
            "daily_cap": "200",
            "min_gap_seconds": "100",
            "display_name": "Ada",
            "signature": "",
        },
    )
    history = html.unescape(client.get(f"/mailboxes/{mailbox.id}").text)
    assert "Changed the daily limit and the minimum gap between emails." in history
    assert "min gap seconds" not in history
