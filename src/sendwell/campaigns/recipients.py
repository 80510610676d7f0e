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
from sendwell.campaigns.candidates import history as workspace_history
from sendwell.campaigns.schedule import known_time_zone
from sendwell.campaigns.service import get_campaign, record_event, status_label
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import Conflict, InvalidInput
from sendwell.kit.signals import dispatch_work
from sendwell.models import Campaign, CampaignStatus, User, lifecycle

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
    timezone: str = ""  # IANA name; the campaign's window applies in it


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
    record: bool = True,
    skip_previous: frozenset[str] = frozenset(),
) -> AddReport:
    """Add recipients in batches: invalid, duplicate and suppressed addresses are reported.

    With `record=False` the caller writes the activity line (`record_added`) once it knows
    every skip, so the log and what the user was shown give the same numbers.
    `skip_previous` names the kinds of history elsewhere in the workspace (`candidates`:
    contacted, replied, bounced, unsubscribed) that keep someone out.
    """
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
        _add_batch(db, user, campaign, batch, seen, report, due, allow_test_domains, skip_previous)
        if report.added > room:
            raise _over_the_limit(room)
    if record:
        record_added(db, user, campaign.id, report.added, report.skipped)
    if report.added and campaign.status is CampaignStatus.ACTIVE:
        dispatch_work.request(db)  # due now (or after the start delay): no idle wait
    return report


def skip_kind(reason: str) -> str:
    """A skip's reason without its particulars, to count skips by reason."""
    if reason.startswith("invalid address"):
        return "invalid address"
    if reason.startswith("the row has"):
        return "malformed row"
    if reason.startswith("unknown time zone"):
        return "unknown time zone"
    if " (“" in reason:  # "replied in another campaign (“Spring”)"
        return reason.split(" (“", 1)[0]
    return reason


def skips_by_kind(skipped: Iterable[Skipped]) -> dict[str, int]:
    """How many rows were skipped for each kind of reason, most frequent first."""
    counts: dict[str, int] = {}
    for item in skipped:
        kind = skip_kind(item.reason)
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))


def added_summary(added: int, skipped: list[Skipped]) -> str:
    """The one sentence both the import's summary and the activity log show."""
    text = f"Added {added} recipient{'s' if added != 1 else ''}; skipped {len(skipped)}"
    if skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in skips_by_kind(skipped).items())
        text += f" ({kinds})"
    return text + "."


def record_added(
    db: Session, user: User, campaign_id: int, added: int, skipped: list[Skipped]
) -> None:
    """The activity line for an addition, when it added or skipped anyone."""
    if added or skipped:
        record_event(
            db, campaign_id, "recipients_added", actor=user, reason=added_summary(added, skipped)
        )


def _add_batch(
    db: Session,
    user: User,
    campaign: Campaign,
    batch: list[tuple[int, RecipientIn]],
    seen: set[str],
    report: AddReport,
    due: Any,
    allow_test_domains: bool,
    skip_previous: frozenset[str],
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
        zone = recipient.timezone.strip()
        if zone and not known_time_zone(zone):
            report.skipped.append(
                Skipped(
                    row,
                    address,
                    f"unknown time zone “{zone[:64]}”: use an IANA name such as Asia/Tokyo "
                    "or Europe/Paris",
                )
            )
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
    if skip_previous:
        candidates = _without_history(db, user, campaign, candidates, report, skip_previous)
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
    if not campaign.recipient_time_zones and any(
        recipient.timezone.strip() and address in inserted
        for _row, address, recipient in candidates
    ):
        campaign.recipient_time_zones = True
    report.added += len(inserted)


def _without_history(
    db: Session,
    user: User,
    campaign: Campaign,
    rows: list[tuple[int, str, RecipientIn]],
    report: AddReport,
    skip_previous: frozenset[str],
) -> list[tuple[int, str, RecipientIn]]:
    """The rows whose history elsewhere in the workspace is not one the user chose to skip."""
    known = workspace_history(
        db, user, campaign.workspace_id, campaign.id, [address for _r, address, _x in rows]
    )
    kept = []
    for row, address, recipient in rows:
        seen = known.get(address)
        if seen is not None and seen.kind in skip_previous:
            report.skipped.append(Skipped(row, address, seen.skip_reason))
        else:
            kept.append((row, address, recipient))
    return kept


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
        "timezone": recipient.timezone.strip(),
        "status": lifecycle.NEW_RECIPIENT,
        "steps_sent": 0,
        "next_due_at": due,
        "created_at": now,
    }


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
