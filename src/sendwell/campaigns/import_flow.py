"""The web import in two steps: upload, then a mapping page, then the import itself.

Between the two steps the file is kept in the database (`pending_imports`), not on one web
process's disk and not re-posted in a hidden field: an upload may be up to
`SENDWELL_MAX_UPLOAD_MB` (50 MB by default), far over the limit of an ordinary form post, and
any web process may receive the confirmation. A kept file belongs to the user who uploaded it
and to its campaign (both checked on every use), expires after `UPLOAD_TTL`, is deleted when
it is imported, and a user's expired or superseded uploads are deleted whenever they upload.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError
from sqlalchemy.orm import Session

from sendwell.campaigns import candidates, importer
from sendwell.campaigns import repository as repo
from sendwell.campaigns.recipients import normalized_address
from sendwell.campaigns.service import get_campaign
from sendwell.kit.clock import utcnow
from sendwell.kit.errors import InvalidInput, NotFound
from sendwell.models import PendingImport, User

UPLOAD_TTL = timedelta(minutes=30)
SAMPLE_ROWS = 20
HISTORY_SHOWN = 200
HISTORY_BATCH = 1000
CUSTOM = "custom"
# What a column can become on the mapping page, with the words the page shows.
CHOICES = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "title": "Title",
    "timezone": "Time zone (IANA name, such as Asia/Tokyo)",
    CUSTOM: "A merge field of its own",
    importer.IGNORE: "Ignore",
}


@dataclass(frozen=True)
class ColumnChoice:
    position: int
    header: str
    sample: str
    choice: str  # a key of CHOICES
    field: str  # the merge field a custom column becomes

    @property
    def merge_field(self) -> str:
        """The template name the column's values are read by, "" when ignored."""
        if self.choice == CUSTOM:
            return self.field
        return "" if self.choice == importer.IGNORE else self.choice


@dataclass(frozen=True)
class MappingPage:
    pending: PendingImport
    columns: list[ColumnChoice]
    history: list[candidates.Seen]
    history_total: int
    addresses: int  # distinct valid addresses read with this mapping
    has_email: bool


def stage(
    db: Session,
    user: User,
    campaign_id: int,
    stream: importer.Readable,
    *,
    filename: str,
    max_bytes: int,
) -> PendingImport:
    """Keep an uploaded file for its mapping page, after checking its header can be read."""
    campaign = get_campaign(db, user, campaign_id)
    content = _read_bounded(stream, max_bytes)
    importer.read_csv(io.BytesIO(content), require_email=False)  # refuses an unreadable header
    now = utcnow()
    repo.delete_pending_imports(db, user.id, campaign.id, now)
    pending = PendingImport(
        token=secrets.token_urlsafe(32),
        user_id=user.id,
        campaign_id=campaign.id,
        filename=filename[:255],
        size=len(content),
        content=content,
        created_at=now,
        expires_at=now + UPLOAD_TTL,
    )
    db.add(pending)
    db.flush()
    return pending


def load(db: Session, user: User, campaign_id: int, token: str) -> PendingImport:
    """The user's kept upload for this campaign, or a sentence saying to upload it again."""
    get_campaign(db, user, campaign_id)
    pending = repo.pending_import(db, user.id, campaign_id, token)
    if pending is None or pending.expires_at <= utcnow():
        raise NotFound(
            "That upload has expired or was already imported; choose the file again.",
            code="upload_expired",
        )
    return pending


def mapping_page(
    db: Session, user: User, pending: PendingImport, choices: Mapping[int, str] | None = None
) -> MappingPage:
    """Each column with a sample value and what it becomes (proposed, or as the user chose),
    and who among the file's addresses has history elsewhere in the workspace."""
    columns = column_choices(pending, choices)
    has_email = any(column.choice == "email" for column in columns)
    seen: list[candidates.Seen] = []
    addresses = 0
    if has_email:
        try:
            emails = _addresses(pending, mapping_of(columns))
        except InvalidInput:
            emails = []  # the mapping itself is refused when the user imports
        addresses = len(emails)
        found: dict[str, candidates.Seen] = {}
        for start in range(0, len(emails), HISTORY_BATCH):
            found.update(
                candidates.with_suppressions(
                    db,
                    user,
                    user.workspace_id,
                    pending.campaign_id,
                    emails[start : start + HISTORY_BATCH],
                )
            )
        seen = sorted(found.values(), key=lambda item: (item.kind, item.email))
    return MappingPage(pending, columns, seen[:HISTORY_SHOWN], len(seen), addresses, has_email)


def column_choices(
    pending: PendingImport, choices: Mapping[int, str] | None = None
) -> list[ColumnChoice]:
    """Each column with a sample value and its target: the user's choice, else the proposal."""
    parsed = importer.read_csv(io.BytesIO(pending.content), require_email=False)
    samples = parsed.samples(SAMPLE_ROWS)
    return [
        ColumnChoice(
            position=column.position,
            header=column.header,
            sample=sample,
            choice=(choices or {}).get(column.position, _proposed(column)),
            field=importer.field_name(column.header) or f"column_{column.position}",
        )
        for column, sample in zip(parsed.columns, samples, strict=True)
    ]


def choices_from_form(form: Mapping[str, str], pending: PendingImport) -> dict[int, str]:
    """`column_<position>` fields of the mapping page, each checked."""
    parsed = importer.read_csv(io.BytesIO(pending.content), require_email=False)
    chosen: dict[int, str] = {}
    for column in parsed.columns:
        value = str(form.get(f"column_{column.position}", "")).strip()
        if not value:
            continue
        if value not in CHOICES:
            raise InvalidInput(
                f"“{value}” is not a choice for the column “{column.header}”.",
                code="invalid_mapping",
            )
        chosen[column.position] = value
    return chosen


def mapping_of(columns: list[ColumnChoice]) -> dict[str, str]:
    """The importer's `{header: target}` for the page's choices (what --map would say)."""
    mapping: dict[str, str] = {}
    for column in columns:
        if not column.header:
            continue  # a nameless column is ignored: it cannot be named in a mapping
        mapping[column.header] = column.merge_field or importer.IGNORE
    return mapping


def confirm(
    db: Session,
    user: User,
    pending: PendingImport,
    choices: Mapping[int, str],
    *,
    skip_previous: frozenset[str],
    allow_test_domains: bool,
) -> importer.ImportReport:
    """Import the kept file with the user's mapping and choices; the upload is then deleted."""
    report = importer.import_csv(
        db,
        user,
        pending.campaign_id,
        io.BytesIO(pending.content),
        mapping=mapping_of(column_choices(pending, choices)),
        allow_test_domains=allow_test_domains,
        skip_previous=skip_previous,
    )
    db.delete(pending)
    db.flush()
    return report


def _proposed(column: importer.Column) -> str:
    if column.custom:
        return CUSTOM
    return column.target if column.target in CHOICES else importer.IGNORE


def _addresses(pending: PendingImport, mapping: dict[str, str]) -> list[str]:
    """The distinct valid addresses the file holds under `mapping`."""
    parsed = importer.read_csv(io.BytesIO(pending.content), mapping)
    found: dict[str, None] = {}
    for _row, recipient in parsed:
        try:
            found[normalized_address(recipient.email, allow_test_domains=True)] = None
        except EmailNotValidError:
            continue
    return list(found)


def _read_bounded(stream: importer.Readable, max_bytes: int) -> bytes:
    data = b"".join(_chunks(stream, max_bytes + 1))
    if len(data) > max_bytes:
        raise InvalidInput(
            f"The file is larger than {max_bytes / 1_000_000:g} MB; split it into smaller files.",
            code="file_too_large",
        )
    if not data.strip():
        raise InvalidInput(
            "The file is empty: it needs a header row naming the columns, such as "
            "“email,first_name,last_name”.",
            code="no_header",
        )
    return data


def _chunks(stream: importer.Readable, limit: int) -> Iterator[bytes]:
    total = 0
    while total < limit:
        chunk = stream.read(min(importer.CHUNK_SIZE, limit - total))
        if not chunk:
            return
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        total += len(data)
        yield data


__all__ = ["CHOICES", "ColumnChoice", "MappingPage", "confirm", "load", "mapping_page", "stage"]
