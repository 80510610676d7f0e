"""Adding recipients to a campaign: checked, de-duplicated and suppression-aware, in batches."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from sendwell.campaigns import repository as repo
from sendwell.campaigns.service import get_campaign, record_event, status_label
from sendwell.dispatch import lifecycle
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput
from sendwell.models import Campaign, CampaignStatus, User

RECIPIENT_BATCH = 1000
STANDARD_COLUMNS = ("first_name", "last_name", "company", "title")


@dataclass(frozen=True)
class RecipientIn:
    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    title: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    row: int
    email: str
    reason: str


@dataclass
class AddReport:
    added: int = 0
    skipped: list[Skipped] = field(default_factory=list)


# A plain ASCII dot-atom local part (RFC 5322 atext), the form nearly every address has.
PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
MAX_LOCAL = 64
MAX_ADDRESS = 254
# Enrollments one campaign may hold: bounds what one import, start check and page can cost.
MAX_RECIPIENTS_PER_CAMPAIGN = 500_000


def normalized_address(raw: str, *, allow_test_domains: bool = False) -> str:
    """The address in the form we store (lower case, domain normalized), or
    `EmailNotValidError` saying what is wrong with it.

    email-validator decides. Its domain checks (IDNA, special-use names) are the expensive
    part and depend only on the domain, so for a plain local part they run once per domain;
    any other local part gets the library's full check.
    """
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if at and len(local) <= MAX_LOCAL and PLAIN_LOCAL.fullmatch(local):
        address = f"{local.lower()}@{_normalized_domain(domain, allow_test_domains)}"
        if len(address) <= MAX_ADDRESS:
            return address
    return validate_email(
        text, check_deliverability=False, test_environment=allow_test_domains
    ).normalized.lower()


@functools.lru_cache(maxsize=4096)
def _normalized_domain(domain: str, allow_test_domains: bool) -> str:
    checked = validate_email(
        f"x@{domain}", check_deliverability=False, test_environment=allow_test_domains
    )
    return checked.domain.lower()


def add_recipients(
    db: Session,
    user: User,
    campaign_id: int,
    rows: Iterable[RecipientIn],
    *,
    allow_test_domains: bool = False,
    first_row: int = 1,
) -> AddReport:
    """Add recipients in batches: invalid, duplicate and suppressed addresses are reported."""
    campaign = get_campaign(db, user, campaign_id)
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED):
        raise Conflict(
            f"Recipients cannot be added to a {status_label(campaign).lower()} campaign.",
            code="not_editable",
        )
    due = None
    if campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
        due = utcnow() + timedelta(minutes=campaign.start_delay_minutes)
    report = AddReport()
    seen: set[str] = set()
    numbered = enumerate(rows, first_row)
    room = MAX_RECIPIENTS_PER_CAMPAIGN - repo.count_enrollments(db, campaign.id)
    for batch in _batches(numbered, RECIPIENT_BATCH):
        _add_batch(db, campaign, batch, seen, report, due, allow_test_domains)
        if report.added > room:
            raise _over_the_limit(room)
    if report.added:
        record_event(
            db,
            campaign.id,
            "recipients_added",
            actor=user,
            reason=f"Added {report.added} recipient{'s' if report.added != 1 else ''}"
            f"; skipped {len(report.skipped)}.",
        )
    return report


def _add_batch(
    db: Session,
    campaign: Campaign,
    batch: list[tuple[int, RecipientIn]],
    seen: set[str],
    report: AddReport,
    due: Any,
    allow_test_domains: bool,
) -> None:
    valid: list[tuple[int, str, RecipientIn]] = []
    for row, recipient in batch:
        try:
            address = normalized_address(recipient.email, allow_test_domains=allow_test_domains)
        except EmailNotValidError as error:
            report.skipped.append(Skipped(row, recipient.email, f"invalid address: {error}"))
            continue
        if address in seen:
            report.skipped.append(Skipped(row, address, "duplicate in this list"))
            continue
        seen.add(address)
        valid.append((row, address, recipient))
    blocked = repo.suppressed(db, campaign.workspace_id, [address for _r, address, _x in valid])
    candidates = []
    for row, address, recipient in valid:
        if address in blocked:
            words = blocked[address].replace("_", " ")
            report.skipped.append(Skipped(row, address, f"on the suppression list ({words})"))
        else:
            candidates.append((row, address, recipient))
    # The unique (campaign, email) index decides what is new: no lookup that grows with the
    # campaign, and no race with a concurrent import.
    now = utcnow()
    inserted = repo.insert_new_enrollments(
        db,
        [
            _enrollment_row(campaign.id, address, recipient, due, now)
            for _row, address, recipient in candidates
        ],
    )
    for row, address, _recipient in candidates:
        if address not in inserted:
            report.skipped.append(Skipped(row, address, "already in this campaign"))
    report.added += len(inserted)


def _over_the_limit(room: int) -> InvalidInput:
    """The whole addition refused (the caller's unit of work rolls it back)."""
    return InvalidInput(
        f"A campaign can hold at most {MAX_RECIPIENTS_PER_CAMPAIGN:,} recipients; this one has "
        f"room for {max(room, 0):,} more. Nothing was added: split the list over campaigns.",
        code="too_many_recipients",
    )


def _enrollment_row(
    campaign_id: int, address: str, recipient: RecipientIn, due: Any, now: datetime
) -> dict[str, Any]:
    values = {
        name: " ".join(str(getattr(recipient, name) or "").split())[:200]
        for name in STANDARD_COLUMNS
    }
    return {
        "campaign_id": campaign_id,
        "email": address,
        **values,
        "fields": {str(k)[:100]: str(v)[:2000] for k, v in recipient.fields.items()},
        "status": lifecycle.NEW_RECIPIENT,
        "steps_sent": 0,
        "next_due_at": due,
        "created_at": now,
    }


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
