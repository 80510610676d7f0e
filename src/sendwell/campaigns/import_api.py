"""/api/v1: a CSV file's recipients, mapped like the CLI's --map, with candidate memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.campaigns import candidates, importer, service
from sendwell.campaigns.schemas import ImportOut, SkippedOut
from sendwell.kit.errors import InvalidInput
from sendwell.models import User
from sendwell.web.deps import get_db

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
SKIP_HELP = (
    "Skip people who, in another campaign of the workspace, did this: "
    f"{', '.join(candidates.CHOOSABLE)}. Repeatable; by default "
    f"{', '.join(sorted(candidates.DEFAULT_SKIP))}. Send `none` to skip nobody for their "
    "history (the suppression list is always honoured)."
)


@router.post(
    "/{campaign_id}/recipients/import",
    response_model=ImportOut,
    summary="Import recipients from a CSV file (multipart), with an optional column mapping",
)
def import_recipients(
    campaign_id: int,
    request: Request,
    file: Annotated[
        UploadFile | None, File(description="A CSV file (UTF-8) with a header row.")
    ] = None,
    map: Annotated[
        list[str] | None,
        Form(
            description='Where a column goes: "Header=field", the field being email, '
            "first_name, last_name, company, title, ignore or a custom field name; repeatable, "
            "like the CLI's --map. Unmapped columns keep their own name as a custom field "
            "(standard names such as “First name” are recognised)."
        ),
    ] = None,
    skip_previous: Annotated[list[str] | None, Form(description=SKIP_HELP)] = None,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> ImportOut:
    service.get_campaign(db, user, campaign_id)  # someone else's campaign: 404 before reading
    if file is None:
        raise InvalidInput("Send the CSV file in the form field “file”.", code="no_file")
    report = importer.import_csv(
        db,
        user,
        campaign_id,
        file.file,
        mapping=parse_map(map or []),
        allow_test_domains=bool(request.app.state.services.sandbox),
        skip_previous=skip_choice(skip_previous),
    )
    return ImportOut(
        added=report.imported,
        skipped=[SkippedOut(row=s.row, email=s.email, reason=s.reason) for s in report.skipped],
        skipped_by_reason=report.skipped_by_reason,
        columns=report.columns,
        summary=report.summary,
    )


def parse_map(pairs: list[str]) -> dict[str, str]:
    """`["Header=field", …]` as the importer's mapping, refusing a malformed pair."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        header, equals, field = pair.rpartition("=")
        if not equals or not header.strip() or not field.strip():
            raise InvalidInput(f'map takes "Header=field", not "{pair}".', code="invalid_mapping")
        mapping[header.strip()] = field.strip()
    return mapping


def skip_choice(values: list[str] | None) -> frozenset[str]:
    """The kinds of history to skip: the default when none is given, nothing for `none`."""
    if values is None:
        return candidates.DEFAULT_SKIP
    words = [part for value in values for part in value.split(",")]
    if [word.strip().lower() for word in words if word.strip()] in ([], ["none"]):
        return frozenset()
    return candidates.parse_skip(words)
