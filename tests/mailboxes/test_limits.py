"""Safer sending limits: each account type's documented daily cap, and a short gap confirmed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.accounts import service as accounts
from sendwell.kit.errors import InvalidInput
from sendwell.mailboxes import limits, service
from sendwell.models import Mailbox, User
from tests.campaigns.test_service import make_mailbox, make_user


def mailbox_at(db: Session, owner: User, provider: str, email: str) -> Mailbox:
    mailbox = make_mailbox(db, owner, email)
    mailbox.provider = provider  # type: ignore[assignment]
    db.flush()
    return mailbox


@pytest.mark.parametrize(
    ("provider", "email", "cap", "kind"),
    [
        ("google", "ada@gmail.com", 500, "Gmail account"),
        ("google", "ada@analytical.example", 2000, "Google Workspace account"),
        ("microsoft", "ada@outlook.com", 5000, "Outlook.com account"),
        ("microsoft", "ada@contoso.example", 10_000, "Microsoft 365 account"),
    ],
)
def test_the_daily_limit_is_capped_by_the_account_type(
    db: Session, provider: str, email: str, cap: int, kind: str
) -> None:
    user = make_user(db)
    mailbox = mailbox_at(db, user, provider, email)
    saved = service.update_settings(db, user=user, mailbox_id=mailbox.id, daily_cap=cap)
    assert saved.daily_cap == cap
    with pytest.raises(InvalidInput) as refused:
        service.update_settings(db, user=user, mailbox_id=mailbox.id, daily_cap=cap + 1)
    assert refused.value.code == "invalid_daily_cap"
    assert f"{kind} can be at most {cap:,} emails" in refused.value.message
    assert mailbox.daily_cap == cap  # nothing saved


def test_a_mail_server_has_no_known_cap_and_says_so(db: Session) -> None:
    user = make_user(db)
    mailbox = mailbox_at(db, user, "imap", "ada@mail.example")
    found = limits.limits_for(mailbox.provider, mailbox.email)
    assert found.daily_cap is None
    assert "No limit is known" in found.reason
    assert service.update_settings(db, user=user, mailbox_id=mailbox.id, daily_cap=10_000)
    with pytest.raises(InvalidInput, match="between 1 and 10,000"):
        service.update_settings(db, user=user, mailbox_id=mailbox.id, daily_cap=10_001)


def test_a_gap_under_the_guidance_needs_a_confirmation(db: Session) -> None:
    user = make_user(db)
    mailbox = mailbox_at(db, user, "google", "ada@analytical.example")
    with pytest.raises(limits.LowGapNotConfirmed) as refused:
        service.update_settings(db, user=user, mailbox_id=mailbox.id, min_gap_seconds=5)
    assert "I understand the risk of a short gap" in refused.value.message
    assert mailbox.min_gap_seconds == 60
    service.update_settings(
        db, user=user, mailbox_id=mailbox.id, min_gap_seconds=5, low_gap_confirmed=True
    )
    assert mailbox.min_gap_seconds == 5
    # Once kept, saving other settings does not ask again; the guidance itself needs nothing.
    service.update_settings(db, user=user, mailbox_id=mailbox.id, min_gap_seconds=5, daily_cap=9)
    service.update_settings(db, user=user, mailbox_id=mailbox.id, min_gap_seconds=60)
    assert (mailbox.min_gap_seconds, mailbox.daily_cap) == (60, 9)


def test_the_api_caps_the_limit_and_asks_to_confirm_a_short_gap(
    client: TestClient, db: Session
) -> None:
    user = db.scalars(select(User)).one()  # the first account, made by the client fixture
    mailbox = make_mailbox(db, user)
    _token, plaintext = accounts.create_api_token(db, user, "tests")
    db.commit()
    headers = {"Authorization": f"Bearer {plaintext}"}
    url = f"/api/v1/mailboxes/{mailbox.id}"
    over = client.patch(url, json={"daily_cap": 2001}, headers=headers)
    assert over.status_code == 422
    assert "Google Workspace account can be at most 2,000" in over.json()["error"]["message"]
    short = client.patch(url, json={"min_gap_seconds": 10}, headers=headers)
    assert short.status_code == 422
    assert short.json()["error"]["code"] == "low_gap_not_confirmed"
    kept = client.patch(
        url, json={"min_gap_seconds": 10, "low_gap_confirmed": True}, headers=headers
    )
    assert kept.status_code == 200, kept.text
    assert (kept.json()["min_gap_seconds"], kept.json()["daily_cap"]) == (10, 1000)
