"""JSON routes: the delegations you asked for or were asked for."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from sendwell.accounts.auth import api_user
from sendwell.delegations import service
from sendwell.delegations.schemas import DelegationOut
from sendwell.models import User
from sendwell.web.deps import get_db

router = APIRouter(tags=["delegations"])


@router.get(
    "/delegations",
    response_model=list[DelegationOut],
    summary="Teammates' mailboxes you may send from, and yours that teammates asked for",
)
def list_delegations(
    user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> list[DelegationOut]:
    return [
        DelegationOut(
            id=view.delegation.id,
            you_are=view.viewer,
            delegate_id=view.delegation.delegate_id,
            owner_id=view.delegation.owner_id,
            mailbox_id=view.delegation.mailbox_id,
            mailbox_email=view.mailbox.email if view.mailbox else None,
            status=view.delegation.status,
            note=view.delegation.note,
            requested_at=view.delegation.requested_at,
            granted_at=view.delegation.granted_at,
            withdrawn_at=view.delegation.withdrawn_at,
        )
        for view in service.views_for(db, user)
    ]
