"""JSON routes: who am I, and my API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from sendwell.accounts import service
from sendwell.accounts.auth import api_user
from sendwell.accounts.schemas import NewTokenOut, PasswordIn, TokenIn, TokenOut, UserOut
from sendwell.models import User
from sendwell.web.deps import get_db

router = APIRouter(tags=["account"])


@router.get("/me", response_model=UserOut, summary="The user the token belongs to")
def me(user: User = Depends(api_user)) -> User:
    return user


@router.post(
    "/me/password",
    status_code=204,
    response_class=Response,
    summary="Change your own password; every browser session ends",
)
def change_password(
    body: PasswordIn,
    user: User = Depends(api_user),
    db: Session = Depends(get_db, scope="function"),
) -> Response:
    service.change_own_password(
        db,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        revoke_tokens=body.revoke_tokens,
    )
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenOut], summary="Your API tokens")
def list_tokens(
    user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> list[TokenOut]:
    return [TokenOut.model_validate(token) for token in service.list_api_tokens(db, user)]


@router.post(
    "/tokens",
    response_model=NewTokenOut,
    status_code=201,
    summary="Create an API token (shown once)",
)
def create_token(
    body: TokenIn, user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> NewTokenOut:
    token, plaintext = service.create_api_token(db, user, body.name)
    return NewTokenOut(**TokenOut.model_validate(token).model_dump(), token=plaintext)


@router.delete(
    "/tokens/{token_id}", status_code=204, response_class=Response, summary="Revoke an API token"
)
def revoke_token(
    token_id: int, user: User = Depends(api_user), db: Session = Depends(get_db, scope="function")
) -> Response:
    service.revoke_api_token(db, user, token_id)
    return Response(status_code=204)
