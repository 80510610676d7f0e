"""The whole database holds no secret in plaintext.

After users signed in, created API tokens, linked a mailbox, left a grant waiting for
confirmation and a sign-in at the provider, and an admin invited someone, every cell of every
table (on both backends) is searched for every secret involved: the provider's access and
refresh tokens and authorization codes, the OAuth state, API tokens, browser session secrets,
the invitation link, the password and the server's keys.
tests/mailboxes/test_tokens.py shows the same tokens are there, encrypted, and still work.
"""

from __future__ import annotations

from sqlalchemy import select

from sendwell.config import Settings
from sendwell.db import session_scope
from sendwell.models import Base, Role
from sendwell.teams import service as teams
from tests.conftest import STRONG_PASSWORD
from tests.sandbox_support import Sandbox
from tests.security.conftest import Tenants


def _every_cell(tenants: Tenants) -> list[str]:
    with session_scope(tenants.factory) as db:
        return [
            str(value)
            for table in Base.metadata.sorted_tables
            for row in db.execute(select(table)).all()
            for value in row
            if value is not None
        ]


def test_no_secret_is_stored_in_plaintext(
    tenants: Tenants, sandbox: Sandbox, security_settings: Settings
) -> None:
    with sandbox.state.lock:
        provider_secrets = {
            **{
                value: f"a provider {token.kind} token"
                for value, token in sandbox.state.tokens.items()
            },
            **dict.fromkeys(sandbox.state.codes, "an authorization code"),
        }
    assert len(provider_secrets) >= 6, "the flows did not reach the provider"
    people = (tenants.alice, tenants.bob, tenants.carol)
    with session_scope(tenants.factory) as db:
        invited = teams.invite(
            db,
            Tenants._user(db, "ada"),
            email="frank@example.com",
            role=Role.MEMBER,
            base_url="http://testserver",
        )
    secrets = {
        invited.link.rsplit("/", 1)[1]: "an invitation link",
        **provider_secrets,
        tenants.owned.pending_state: "an OAuth state",
        STRONG_PASSWORD: "a password",
        security_settings.secret_key: "the secret key",
        **dict.fromkeys(security_settings.token_key_list, "a token key"),
        **{who.token: f"{who.name}'s API token" for who in people},
        **{who.client.cookies["sendwell_session"]: f"{who.name}'s session" for who in people},
    }
    cells = _every_cell(tenants)
    assert len(cells) > 100
    found = sorted({what for secret, what in secrets.items() for cell in cells if secret in cell})
    assert found == []
