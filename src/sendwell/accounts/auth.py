"""Who is asking: the signed-in browser (session cookie) or an API client (bearer token)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from sendwell.accounts import service
from sendwell.config import Settings
from sendwell.kit.errors import NotAuthenticated
from sendwell.models import User
from sendwell.web.deps import get_db

SESSION_COOKIE = "sendwell_session"

bearer_scheme = HTTPBearer(
    auto_error=False, description="An API token from `sendwell tokens create`"
)


class SignInRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def redirect_to_sign_in(_request: Request, error: SignInRequired) -> Response:
    """A page that needs a signed-in user sends the browser to sign in, then back."""
    return RedirectResponse(sign_in_url(error.next_path), status_code=303)


def sign_in_url(next_path: str = "") -> str:
    if not is_local_path(next_path) or next_path in ("/", "/sign-in"):
        return "/sign-in"
    return f"/sign-in?next={quote(next_path, safe='/')}"


def is_local_path(path: str) -> bool:
    """True for a path on this site only (never //host or a full URL): safe to redirect to."""
    return path.startswith("/") and not path.startswith("//") and "\\" not in path


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(timedelta(days=settings.session_days).total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def optional_user(request: Request, db: Session = Depends(get_db, scope="function")) -> User | None:
    """The signed-in user, or None; also made available to templates."""
    secret = request.cookies.get(SESSION_COOKIE)
    user = service.user_for_session(db, secret) if secret else None
    if user is not None:
        # Detached but fully loaded: a request that fails and rolls back can still show
        # its error page with the user's name, and no service can change the user by accident.
        db.expunge(user)
    request.state.user = user
    return user


def current_user(request: Request, user: User | None = Depends(optional_user)) -> User:
    """The signed-in user; anyone else is sent to the sign-in page."""
    if user is None:
        path = request.url.path
        raise SignInRequired(path + (f"?{request.url.query}" if request.url.query else ""))
    return user


def api_user(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    db: Session = Depends(get_db, scope="function"),
) -> User:
    """The owner of the bearer token; 401 without one or with an unknown one."""
    if credentials is None:
        raise NotAuthenticated(
            "Send an API token in the Authorization header: 'Authorization: Bearer <token>'.",
            code="missing_token",
        )
    user = service.user_for_api_token(db, credentials.credentials)
    if user is None:
        raise NotAuthenticated("The API token is not valid or was revoked.", code="invalid_token")
    db.expunge(user)
    return user
