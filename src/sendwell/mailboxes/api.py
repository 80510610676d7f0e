"""JSON routes for mailboxes: list, read, change limits, disconnect, start a link."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.accounts.service import normalize_email
from sendwell.dispatch import resuming
from sendwell.dispatch.schemas import CampaignResumePreviewOut, ResumeIn, ResumePreviewOut
from sendwell.kit.errors import InvalidInput
from sendwell.mailboxes import domain_checks, lookahead, server_accounts, service
from sendwell.mailboxes.expiry import Expiry
from sendwell.mailboxes.provider_services import ProviderServices
from sendwell.mailboxes.schemas import (
    DomainCheckOut,
    DomainHealthIn,
    DomainHealthOut,
    ExpiryOut,
    LinkIn,
    LinkOut,
    MailboxExpiryOut,
    MailboxOut,
    MailboxPatch,
    ServerLinkIn,
)
from sendwell.models import CatchUp, DomainCheck, Mailbox, User
from sendwell.providers.discovery import domain_of
from sendwell.web.deps import get_db, get_services

router = APIRouter(prefix="/mailboxes", tags=["mailboxes"])


@router.get("", response_model=list[MailboxOut], summary="Email accounts you can see")
def list_mailboxes(
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> list[MailboxOut]:
    return _with_expiry(db, services, service.visible_mailboxes(db, user))


@router.get(
    "/expiry",
    response_model=list[MailboxExpiryOut],
    summary="Admins: every account of the workspace with its expected expiry, soonest first",
)
def workspace_expiry(
    request: Request,
    sort: Literal["expiry", "email", "owner", "provider"] = "expiry",
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> list[MailboxExpiryOut]:
    return [
        MailboxExpiryOut(
            mailbox_id=row.mailbox.id,
            email=row.mailbox.email,
            provider=row.mailbox.provider,
            status=row.mailbox.status,
            owner_email=row.mailbox.owner.email,
            expected_expiry=_expiry_out(row.expiry),
        )
        for row in lookahead.workspace_expiries(db, services.expiry_rules, user, sort)
    ]


@router.get("/{mailbox_id}", response_model=MailboxOut, summary="One email account")
def get_mailbox(
    mailbox_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> MailboxOut:
    return _with_expiry(db, services, [service.get_mailbox(db, user, mailbox_id)])[0]


def _with_expiry(
    db: Session, services: ProviderServices, mailboxes: list[Mailbox]
) -> list[MailboxOut]:
    expiries = lookahead.expiries_for(db, services.expiry_rules, mailboxes)
    return [
        MailboxOut.model_validate(m).model_copy(
            update={"expected_expiry": _expiry_out(expiries.get(m.id))}
        )
        for m in mailboxes
    ]


def _expiry_out(expiry: Expiry | None) -> ExpiryOut | None:
    if expiry is None:
        return None
    return ExpiryOut(
        at=expiry.at,
        reason=expiry.reason.value,
        why=expiry.why,
        action=expiry.action,
        warn_from=expiry.warn_from,
    )


@router.patch("/{mailbox_id}", response_model=MailboxOut, summary="Change limits and sender")
def patch_mailbox(
    mailbox_id: int,
    body: MailboxPatch,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> Mailbox:
    return service.update_settings(
        db, user=user, mailbox_id=mailbox_id, **body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/{mailbox_id}",
    response_model=MailboxOut,
    summary="Disconnect (Remove Account): tokens deleted, history kept",
)
def delete_mailbox(
    mailbox_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Mailbox:
    return service.disconnect(db, services, user=user, mailbox_id=mailbox_id)


@router.post(
    "/link",
    response_model=LinkOut,
    status_code=201,
    summary="Start linking an address: returns the provider sign-in URL",
)
def link(
    body: LinkIn,
    response: Response,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> LinkOut:
    address = normalize_email(body.email, allow_test_domains=services.sandbox)
    chosen = service.choose_provider(services, address, body.provider or "")
    if chosen is None:
        raise InvalidInput(
            f"Sendwell could not tell which service hosts {address}; send "
            '"provider": "google" or "microsoft", or link it with /mailboxes/link-server.',
            code="provider_unknown",
        )
    url = service.start_link(
        db, services, user=user, email=address, provider_name=chosen, session_secret=None
    )
    return LinkOut(authorize_url=url, provider=chosen.value)


@router.post(
    "/link-server",
    response_model=MailboxOut,
    summary="Link (or reauthenticate) an IMAP/SMTP account after testing both servers",
)
def link_server(
    body: ServerLinkIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> Mailbox:
    """A failed test answers 422 ``connection_test_failed`` with the server's words."""
    form = server_accounts.ServerSettingsIn(
        email=normalize_email(body.email, allow_test_domains=services.sandbox),
        smtp_host=body.smtp_host,
        smtp_port=str(body.smtp_port or ""),
        smtp_security=body.smtp_security,
        imap_host=body.imap_host,
        imap_port=str(body.imap_port or ""),
        imap_security=body.imap_security,
        username=body.username,
        password=body.password,
        auth_method=body.auth_method,
    )
    return server_accounts.link_server_account(db, services, user=user, form=form).mailbox


@router.get(
    "/{mailbox_id}/domain-health",
    response_model=DomainHealthOut,
    summary="Domain health: the sending domain's MX, SPF, DKIM and DMARC as last checked",
)
def domain_health(
    mailbox_id: int,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> DomainHealthOut:
    """The last look, as Email Settings shows it; the periodic health check looks again every
    hour. Before the first look `checked_at` is null and `checks` empty."""
    mailbox, found = domain_checks.latest(db, user, mailbox_id)
    return _domain_health_out(mailbox, found)


@router.post(
    "/{mailbox_id}/domain-health",
    response_model=DomainHealthOut,
    summary="Check the sending domain now (Check now), optionally naming DKIM selectors",
)
def check_domain_health(
    request: Request,
    mailbox_id: int,
    body: DomainHealthIn | None = None,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> DomainHealthOut:
    """Asks DNS now and answers with the result; a selector that is not one is refused (422
    `invalid_selector`, `too_many_selectors`) and nothing is checked or saved."""
    domain_checks.check_now(
        db,
        request.app.state.session_factory,
        services,
        user,
        mailbox_id,
        selectors=body.selectors if body is not None else None,
    )
    mailbox, found = domain_checks.latest(db, user, mailbox_id)
    return _domain_health_out(mailbox, found)


def _domain_health_out(mailbox: Mailbox, found: DomainCheck | None) -> DomainHealthOut:
    checked = found is not None and found.checked_at is not None
    return DomainHealthOut(
        mailbox_id=mailbox.id,
        email=mailbox.email,
        domain=found.domain if found and found.domain else domain_of(mailbox.email),
        handled_by=(found.handled_by or None) if found and checked else None,
        selectors=domain_checks.selectors_of(found),
        checked_at=found.checked_at if found and checked else None,
        checks=[DomainCheckOut.model_validate(c) for c in found.results]
        if found and checked
        else [],
    )


@router.get(
    "/{mailbox_id}/resume-preview",
    response_model=list[CampaignResumePreviewOut],
    summary="What Resume all would do for each campaign it would resume",
)
def resume_preview(
    mailbox_id: int,
    catch_up: CatchUp | None = Query(
        default=None, description="The choice to preview; each campaign's own when omitted."
    ),
    skip_days: int | None = Query(default=None, description="For `skip`: 1 to 365."),
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> list[CampaignResumePreviewOut]:
    plans = resuming.resume_all_preview(
        db,
        user,
        mailbox_id,
        catch_up=catch_up,
        skip_days=skip_days,
        host_interval=resuming.send_interval(db, services, mailbox_id),
    )
    return [
        CampaignResumePreviewOut(campaign_id=campaign.id, preview=ResumePreviewOut.from_plan(plan))
        for campaign, plan in plans
    ]


@router.post(
    "/{mailbox_id}/resume-campaigns",
    response_model=list[int],
    summary="Resume all: every campaign this account's disconnect or reauthentication paused",
)
def resume_campaigns(
    mailbox_id: int,
    body: ResumeIn | None = None,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
    services: ProviderServices = Depends(get_services),
) -> list[int]:
    """Each with the choice given, or its own; `GET …/resume-preview` shows what it does."""
    resumed = resuming.resume_paused_by_mailbox(
        db,
        user,
        mailbox_id,
        catch_up=body.catch_up if body else None,
        skip_days=body.skip_days if body else None,
        host_interval=resuming.send_interval(db, services, mailbox_id),
    )
    return [campaign.id for campaign in resumed]
