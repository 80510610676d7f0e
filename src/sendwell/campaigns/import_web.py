"""The import's mapping page: each column, a sample and what it becomes; then Import."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from sendwell.accounts.auth import current_user
from sendwell.campaigns import candidates, import_flow
from sendwell.campaigns import web as campaigns_web
from sendwell.campaigns.service import get_campaign
from sendwell.db import all_or_nothing
from sendwell.kit.errors import SendwellError
from sendwell.mailboxes.web import load_alerts
from sendwell.models import PendingImport, User
from sendwell.web.deps import get_db
from sendwell.web.pages import redirect_with_flash, render

router = APIRouter(dependencies=[Depends(load_alerts)])
PATH = "/campaigns/{campaign_id}/recipients/import/{token}"


async def form_data(request: Request) -> FormData:
    return await request.form()


@router.get(PATH)
def mapping_page(
    request: Request,
    campaign_id: int,
    token: str,
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """The uploaded file's columns, proposed mapping and the candidates' history."""
    get_campaign(db, user, campaign_id)  # someone else's campaign is a 404 page
    try:
        pending = import_flow.load(db, user, campaign_id, token)
    except SendwellError as error:
        return _expired(request, campaign_id, error)
    return _page(request, db, user, pending)


@router.post(PATH)
def import_mapped(
    request: Request,
    campaign_id: int,
    token: str,
    form: FormData = Depends(form_data),
    user: User = Depends(current_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    """Import the kept file with the mapping and the skip choices on the page."""
    get_campaign(db, user, campaign_id)
    try:
        pending = import_flow.load(db, user, campaign_id, token)
    except SendwellError as error:
        return _expired(request, campaign_id, error)
    choices: dict[int, str] = {}
    skip = frozenset(str(value) for value in form.getlist("skip_previous"))
    try:
        choices = import_flow.choices_from_form(
            {key: str(value) for key, value in form.items()}, pending
        )
        with all_or_nothing(db):  # a refused import adds no one
            report = import_flow.confirm(
                db,
                user,
                pending,
                choices,
                skip_previous=candidates.parse_skip(skip),
                allow_test_domains=campaigns_web._sandbox(request),
            )
    except SendwellError as error:
        pending = import_flow.load(db, user, campaign_id, token)
        return _page(
            request, db, user, pending, choices, skip, error=error.message, status=error.status_code
        )
    return campaigns_web._campaign_page(request, db, user, campaign_id, import_report=report)


def _expired(request: Request, campaign_id: int, error: SendwellError) -> Response:
    """An upload that is gone: back to the campaign's import form, saying so."""
    return redirect_with_flash(
        request, f"/campaigns/{campaign_id}#recipients", error.message, kind="error"
    )


def _page(
    request: Request,
    db: Session,
    user: User,
    pending: PendingImport,
    choices: dict[int, str] | None = None,
    skip: frozenset[str] = candidates.DEFAULT_SKIP,
    *,
    error: str = "",
    status: int = 200,
) -> Response:
    page = import_flow.mapping_page(db, user, pending, choices)
    return render(
        request,
        "campaigns/import_map.html",
        {
            "campaign": get_campaign(db, user, pending.campaign_id),
            "page": page,
            "choices": import_flow.CHOICES,
            "skip": skip,
            "kinds": candidates.SKIP_LABELS,
            "error": error,
        },
        status_code=status,
    )
