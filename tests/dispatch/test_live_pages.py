"""The live pages' JSON and the pages themselves agree: while a campaign is paused nothing
says "In Progress" or names a time; while it sends, counts and rows follow the ledger."""

from __future__ import annotations

import html

from sqlalchemy import select

from sendwell.campaigns import service
from sendwell.db import session_scope
from sendwell.models import Enrollment, User
from tests.dispatch.conftest import World

TWO_STEPS = [
    ("Hello {{ first_name }}", "Hi {{ first_name }}.", 0),
    ("", "Any thoughts?", 2 * 24 * 60),
]
PAUSED = "Paused — resumes when you click Resume"


def _recipients(world: World, campaign_id: int) -> dict[str, int]:
    with session_scope(world.factory) as db:
        rows = db.execute(
            select(Enrollment.email, Enrollment.id).where(Enrollment.campaign_id == campaign_id)
        ).all()
        return {email: int(eid) for email, eid in rows}


def _pause(world: World, campaign_id: int) -> None:
    with session_scope(world.factory) as db:
        service.pause(db, db.scalars(select(User)).first(), campaign_id)


def test_a_paused_campaign_says_so_on_every_page_and_in_every_live_answer(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS, ["ann@example.com", "bob@example.com"])
    world.dispatcher().run_until_idle()
    _pause(world, campaign_id)
    people = _recipients(world, campaign_id)
    client = world.client

    page = html.unescape(client.get(f"/campaigns/{campaign_id}").text)
    assert page.count(PAUSED) >= 3  # the campaign's next email and each recipient's
    assert "In Progress · step" not in page
    assert "Paused · step 1 sent" in page
    assert 'data-live-source="/campaigns/' in page

    ids = ",".join(str(i) for i in people.values())
    answer = client.get(f"/campaigns/{campaign_id}/live", params={"ids": ids})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    live = answer.json()
    assert (live["status"], live["status_label"]) == ("paused", "Paused")
    assert live["pause_words"] == "Paused by you."
    assert live["counts"]["sent"] == 2
    assert live["next"] == {
        "at": None,
        "words": PAUSED,
        "text": PAUSED,
        "label": "",
        "badge": "",
    }
    assert live["actions"] == ["resume", "duplicate", "archive"]
    assert sorted(row["id"] for row in live["rows"]) == sorted(people.values())
    for row in live["rows"]:
        assert "Paused · step 1 sent" in html.unescape(row["status_html"])
        assert html.unescape(row["next_html"]) == PAUSED
        assert row["steps_sent"] == "1 / 2"
    # The chart comes back only when the number sent differs from the page's.
    assert "<svg" in live["chart_html"]
    assert "Step 1" in live["chart_html"]
    again = client.get(f"/campaigns/{campaign_id}/live", params={"ids": ids, "sent": "2"}).json()
    assert "chart_html" not in again

    ann = people["ann@example.com"]
    recipient = html.unescape(client.get(f"/campaigns/{campaign_id}/recipients/{ann}").text)
    assert PAUSED in recipient
    assert "Due " not in recipient
    one = client.get(f"/campaigns/{campaign_id}/recipients/{ann}/live").json()
    assert (one["status"], one["label"], one["badge"]) == (
        "in_progress",
        "Paused · step 1 sent",
        "e-paused",
    )
    states = {step["step"]: html.unescape(step["state_html"]) for step in one["steps"]}
    assert states[1] == "Sent"
    assert states[2] == PAUSED

    tab = client.get("/messaging/campaigns/live", params={"ids": str(campaign_id)}).json()
    (row,) = tab["campaigns"]
    assert row["status"] == "paused"
    assert "Paused by you." in row["status_html"]
    progress = html.unescape(row["progress_html"])
    assert "2 sent" in progress
    assert PAUSED in progress
    assert ">Resume</button>" in row["menu_html"]


def test_an_active_campaign_answers_with_real_times_and_finishes_live(world: World) -> None:
    campaign_id = world.campaign(TWO_STEPS[:1], ["ann@example.com"], start_delay_minutes=0)
    people = _recipients(world, campaign_id)
    ids = ",".join(str(i) for i in people.values())
    before = world.client.get(f"/campaigns/{campaign_id}/live", params={"ids": ids}).json()
    assert before["status"] == "active"
    assert before["counts"]["sent"] == 0
    assert before["next"]["at"] is not None
    assert "Next email" in html.unescape(before["next_html"])
    (row,) = before["rows"]
    assert "<time datetime=" in row["next_html"]
    assert "Not Started" in row["status_html"]

    world.dispatcher().run_until_idle()
    after = world.client.get(
        f"/campaigns/{campaign_id}/live", params={"ids": ids, "sent": "0"}
    ).json()
    assert (after["status"], after["status_label"], after["finished"]) == (
        "completed",
        "Completed",
        True,
    )
    assert after["counts"]["sent"] == 1
    assert after["next_html"] == "Completed"
    (row,) = after["rows"]
    assert ">Completed<" in row["status_html"]
    assert row["next_html"] == "Completed"


def test_live_answers_leave_out_rows_that_are_not_the_campaigns(world: World) -> None:
    first = world.campaign(TWO_STEPS, ["ann@example.com"])
    second = world.campaign(TWO_STEPS, ["bob@example.com"])
    bob = _recipients(world, second)["bob@example.com"]
    live = world.client.get(
        f"/campaigns/{first}/live", params={"ids": f"{bob},not-an-id,,99999999"}
    ).json()
    assert live["rows"] == []
    missing = world.client.get(f"/campaigns/{first}/recipients/{bob}/live")
    assert missing.status_code == 404
    assert world.client.get("/campaigns/99999/live").status_code == 404
