"""OAuth 2.0 pieces both hosts share: PKCE, the authorization URL, token responses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from sendwell.kit.clock import utcnow
from sendwell.providers.base import TokenSet
from sendwell.providers.errors import ProviderError

# Access tokens are treated as expired this long before the host says, so a call never
# starts with a token that dies on the way.
EXPIRY_MARGIN = timedelta(seconds=60)


def new_code_verifier() -> str:
    """A PKCE code verifier (RFC 7636: 43 to 128 unreserved characters)."""
    return str(generate_token(64))


def new_state() -> str:
    return str(generate_token(32))


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_verifier: str,
    **extra: str,
) -> str:
    """The authorization-code request with a PKCE S256 challenge."""
    return str(
        prepare_grant_uri(
            endpoint,
            client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(scopes),
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **{k: v for k, v in extra.items() if v},
        )
    )


def token_set(body: dict[str, Any], *, provider: str) -> TokenSet:
    """Tokens from a successful token response."""
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError(f"{provider} answered without an access token.", code="no_token")
    expires_in = int(body.get("expires_in") or 3600)
    refresh = body.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=utcnow() + timedelta(seconds=expires_in) - EXPIRY_MARGIN,
        scopes=frozenset(str(body.get("scope", "")).split()),
    )
