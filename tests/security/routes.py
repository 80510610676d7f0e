"""Every route the app serves, read from its route table, and how to call each one.

`ROUTES` classifies each (method, path) of the pages and of the /api/v1 sub-application:

- `PUBLIC`: reachable without signing in, by design.
- `OWN`: needs a signed-in user (or an API token) and names no object: lists and creations
  that act on the caller's own data.
- an object case, `obj(...)`: names an object, in the path or in the body; the case says
  what to send, and the path is filled with the ids of Alice's objects (Ada's webhook).

The tests read the live route table, so a new route that is not classified here fails them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Mount

from sendwell.app import API_PREFIX
from sendwell.sandbox.app import MOUNT_PATH as SANDBOX_MOUNT_PATH
from tests.conftest import csrf_from
from tests.security.conftest import Identity, Owned

MISSING_ID = 987_654
MAILBOX_PROBE = "probe@gmail.test"
Body = Callable[[Owned], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """How one route is reached and what it may answer to someone who does not own it."""

    kind: str  # "public", "own" or "object"
    json: Body | None = None
    form: Body | None = None
    upload: bool = False
    query: Callable[[Owned], dict[str, str]] | None = None
    fills: tuple[dict[str, str], ...] = ({},)
    owner: str = "alice"  # who owns the object: the tests' positive control asks as them
    owner_page: bool = True  # False: the owner's own GET is not a page of the object either
    owner_sees_text: bool = True  # False: the owner's answer names none of the object's text
    # Answers another user may get instead of 403/404, with the reason they leak nothing.
    refusals: frozenset[int] = frozenset({403, 404})
    why: str = ""


PUBLIC = Case("public")
OWN = Case("own")


def own(*, json: Body | None = None, form: Body | None = None, **extra: Any) -> Case:
    return Case("own", json=json, form=form, **extra)


def obj(*, json: Body | None = None, form: Body | None = None, **extra: Any) -> Case:
    return Case("object", json=json, form=form, **extra)


def _campaign_json(o: Owned) -> dict[str, Any]:
    return {
        "name": "Taken over",
        "mailbox_id": o.mailbox_id,
        "steps": [{"subject": "Taken over", "body": "Taken over"}],
    }


def _campaign_form(o: Owned) -> dict[str, Any]:
    return {
        "name": "Taken over",
        "mailbox_id": str(o.mailbox_id),
        "days": "mon",
        "step_subject": "Taken over",
        "step_body": "Taken over",
        "step_delay": "0",
        "step_unit": "days",
    }


LINK_REFUSAL = (
    "a link attempt that is not the caller's is refused exactly like a spent or unknown one "
    "(409, 'start again'), and stays untouched"
)

ACCOUNT_IN_BODY = (
    "the sending account is named in the body: one that is not the caller's is refused as "
    "invalid input, exactly like one that does not exist"
)

ADMIN_ONLY = (
    "team management is for admins: a member is refused (403) the same way whether or not the "
    "user, invitation or campaign exists"
)


def _reassign(o: Owned) -> dict[str, Any]:
    return {"owner_id": str(o.user_id), "mailbox_id": str(o.mailbox_id)}


ROUTES: dict[tuple[str, str], Case] = {
    # Pages
    ("GET", "/"): PUBLIC,
    ("GET", "/setup"): PUBLIC,
    ("POST", "/setup"): PUBLIC,
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in"): PUBLIC,
    ("POST", "/sign-out"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/u/{token}"): Case("public", fills=({"token": "not-a-signed-token"},)),
    ("POST", "/u/{token}"): Case("public", fills=({"token": "not-a-signed-token"},)),
    ("GET", "/account"): OWN,
    ("POST", "/account/tokens"): own(form=lambda o: {"name": "probe"}),
    ("POST", "/account/tokens/{token_id}/revoke"): obj(),
    ("GET", "/messaging"): OWN,
    ("GET", "/messaging/campaigns"): OWN,
    # Asked for Alice's campaign by id: anyone else's answer leaves it out.
    ("GET", "/messaging/campaigns/live"): own(query=lambda o: {"ids": str(o.campaign_id)}),
    ("GET", "/messaging/settings"): OWN,
    ("GET", "/messaging/expiry"): OWN,
    ("GET", "/messaging/replies"): OWN,
    ("POST", "/replies/{reply_id}/interest"): obj(form=lambda o: {"interest": "interested"}),
    ("POST", "/mailboxes/{mailbox_id}/webmail"): obj(
        form=lambda o: {"webmail_url": "https://taken.example/"}
    ),
    ("GET", "/campaigns/new"): OWN,
    ("POST", "/campaigns/new"): obj(
        form=_campaign_form, refusals=frozenset({422}), why=ACCOUNT_IN_BODY
    ),
    ("GET", "/campaigns/{campaign_id}"): obj(),
    ("GET", "/campaigns/{campaign_id}/edit"): obj(),
    ("POST", "/campaigns/{campaign_id}/edit"): obj(form=_campaign_form),
    ("POST", "/campaigns/{campaign_id}/recipients"): obj(
        form=lambda o: {"email": "probe@example.com"}
    ),
    ("GET", "/campaigns/{campaign_id}/recipients/{enrollment_id}"): obj(),
    ("GET", "/campaigns/{campaign_id}/live"): obj(
        query=lambda o: {"ids": str(o.enrollment_id)},
        owner_sees_text=False,
        why="numbers, statuses and times only: no name or address of the campaign's",
    ),
    ("GET", "/campaigns/{campaign_id}/recipients/{enrollment_id}/live"): obj(
        owner_sees_text=False,
        why="the recipient's status and sequence states only: no name or address",
    ),
    ("POST", "/campaigns/{campaign_id}/recipients/import"): obj(upload=True),
    ("POST", "/campaigns/{campaign_id}/recipients/actions"): obj(
        form=lambda o: {"action": "pause", "ids": str(o.enrollment_id)}
    ),
    ("GET", "/campaigns/{campaign_id}/recipients/import/{token}"): obj(
        fills=({"token": "not-an-upload"},),
        owner_page=False,
        why="no upload has this token: the owner is sent back to the campaign's import form",
    ),
    ("POST", "/campaigns/{campaign_id}/recipients/import/{token}"): obj(
        form=lambda o: {"column_1": "email"}, fills=({"token": "not-an-upload"},)
    ),
    ("GET", "/campaigns/{campaign_id}/resume"): obj(
        owner_page=False, why="Alice's campaign is a draft: its Resume page sends her back"
    ),
    ("GET", "/campaigns/{campaign_id}/start"): obj(),
    ("GET", "/campaigns/{campaign_id}/message"): obj(),
    ("POST", "/campaigns/{campaign_id}/test-send"): obj(form=lambda o: {"step": "1"}),
    ("POST", "/campaigns/{campaign_id}/{action}"): obj(
        fills=tuple(
            {"action": a} for a in ("start", "pause", "resume", "archive", "duplicate", "restore")
        )
    ),
    ("GET", "/snippets"): OWN,
    ("POST", "/snippets"): own(form=lambda o: {"name": "Probe", "body": "Probe text"}),
    ("POST", "/snippets/{snippet_id}/edit"): obj(
        form=lambda o: {"name": "Taken over", "body": "Taken over"}
    ),
    ("POST", "/snippets/{snippet_id}/delete"): obj(),
    ("GET", "/mailboxes/link"): OWN,
    ("POST", "/mailboxes/link"): own(form=lambda o: {"own": "on", "email": "probe@gmail.test"}),
    ("GET", "/mailboxes/callback/{provider}"): obj(
        fills=({"provider": "google"},),
        query=lambda o: {"state": o.pending_state, "code": "probe"},
        refusals=frozenset({409}),
        why=LINK_REFUSAL,
    ),
    ("POST", "/mailboxes/link/{attempt_id}/confirm"): obj(
        refusals=frozenset({409}), why=LINK_REFUSAL
    ),
    ("POST", "/mailboxes/link/{attempt_id}/discard"): obj(
        refusals=frozenset({409}), why=LINK_REFUSAL
    ),
    ("GET", "/mailboxes/admin-approval/{provider}"): Case(
        "own", fills=({"provider": "google"}, {"provider": "microsoft"})
    ),
    ("GET", "/mailboxes/{mailbox_id}"): obj(),
    ("POST", "/mailboxes/{mailbox_id}/settings"): obj(
        form=lambda o: {"daily_cap": "1", "min_gap_seconds": "0", "display_name": "Taken over"}
    ),
    ("POST", "/mailboxes/{mailbox_id}/domain-health"): obj(form=lambda o: {"selectors": "taken"}),
    ("POST", "/mailboxes/{mailbox_id}/disconnect"): obj(),
    ("GET", "/mailboxes/{mailbox_id}/resume-all"): obj(
        owner_page=False, why="no campaign of Alice's waits on her account: the page sends her back"
    ),
    ("POST", "/mailboxes/{mailbox_id}/resume-all"): obj(),
    ("POST", "/mailboxes/{mailbox_id}/reauthenticate"): obj(),
    ("GET", "/mailboxes/{mailbox_id}/password"): obj(
        owner_page=False, why="only IMAP/SMTP accounts have a password page; Alice's is Google"
    ),
    ("POST", "/mailboxes/{mailbox_id}/password"): obj(
        form=lambda o: {"username": "alice", "password": "taken over"}
    ),
    ("GET", "/mailboxes/link/server"): OWN,
    ("POST", "/mailboxes/link/server"): own(form=lambda o: {"email": "probe@example.com"}),
    ("GET", "/messaging/webhooks"): OWN,
    ("POST", "/messaging/webhooks"): own(
        form=lambda o: {"url": "http://127.0.0.1:9/probe", "events": "campaign.started"}
    ),
    ("GET", "/messaging/webhooks/{endpoint_id}"): obj(owner="ada"),
    ("POST", "/messaging/webhooks/{endpoint_id}/{switch}"): obj(
        owner="ada", fills=({"switch": "enable"}, {"switch": "disable"})
    ),
    ("POST", "/messaging/webhooks/{endpoint_id}/delete"): obj(owner="ada"),
    ("GET", "/metrics"): Case("public", why="its own bearer token (SENDWELL_METRICS_TOKEN)"),
    # Everyone's own account
    ("POST", "/account/profile"): own(form=lambda o: {"name": "Probe"}),
    ("POST", "/account/password"): own(
        form=lambda o: {"current_password": "not it", "new_password": "another long passphrase"}
    ),
    # The team (admins) and invitations (their one-time link is the authority)
    ("GET", "/team"): OWN,
    ("POST", "/team/invitations"): own(form=lambda o: {"email": "probe@example.com"}),
    ("POST", "/team/invitations/{invitation_id}/cancel"): obj(owner="ada", why=ADMIN_ONLY),
    ("GET", "/team/users/{user_id}"): obj(owner="ada", why=ADMIN_ONLY),
    ("POST", "/team/users/{user_id}/role"): obj(
        owner="ada", form=lambda o: {"role": "admin"}, why=ADMIN_ONLY
    ),
    ("POST", "/team/users/{user_id}/deactivate"): obj(owner="ada", why=ADMIN_ONLY),
    ("POST", "/team/campaigns/{campaign_id}/reassign"): obj(
        owner="ada", form=_reassign, why=ADMIN_ONLY
    ),
    ("GET", "/invitations/{token}"): Case("public", fills=({"token": "not-an-invitation"},)),
    ("POST", "/invitations/{token}"): Case("public", fills=({"token": "not-an-invitation"},)),
    # Sending from a teammate's mailbox: only its owner and the delegate see the delegation
    ("POST", "/delegations"): own(form=lambda o: {"teammate_id": str(o.user_id)}),
    ("GET", "/delegations/{delegation_id}"): obj(),
    ("POST", "/delegations/{delegation_id}/link"): obj(form=lambda o: {"email": MAILBOX_PROBE}),
    ("POST", "/delegations/{delegation_id}/approve"): obj(
        form=lambda o: {"mailbox_id": str(o.mailbox_id)}
    ),
    ("POST", "/delegations/{delegation_id}/withdraw"): obj(),
    ("POST", "/delegations/{delegation_id}/resume-all"): obj(),
    # The JSON API
    ("GET", f"{API_PREFIX}/openapi.json"): PUBLIC,
    ("GET", f"{API_PREFIX}/docs"): PUBLIC,
    ("GET", f"{API_PREFIX}/me"): OWN,
    ("GET", f"{API_PREFIX}/tokens"): OWN,
    ("POST", f"{API_PREFIX}/me/password"): own(
        json=lambda o: {"current_password": "not it", "new_password": "another long passphrase"}
    ),
    ("GET", f"{API_PREFIX}/users"): OWN,
    ("GET", f"{API_PREFIX}/delegations"): OWN,
    ("GET", f"{API_PREFIX}/replies"): OWN,
    ("PATCH", f"{API_PREFIX}/replies/{{reply_id}}"): obj(json=lambda o: {"interest": "interested"}),
    ("POST", f"{API_PREFIX}/users"): own(json=lambda o: {"email": "probe@example.com"}),
    ("PATCH", f"{API_PREFIX}/users/{{user_id}}"): obj(
        owner="ada", json=lambda o: {"name": "Taken over"}
    ),
    ("POST", f"{API_PREFIX}/users/{{user_id}}/deactivate"): obj(owner="ada", why=ADMIN_ONLY),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/reassign"): obj(
        owner="ada",
        json=lambda o: {"owner_id": o.user_id, "mailbox_id": o.mailbox_id},
        why=ADMIN_ONLY,
    ),
    ("POST", f"{API_PREFIX}/tokens"): own(json=lambda o: {"name": "probe"}),
    ("DELETE", f"{API_PREFIX}/tokens/{{token_id}}"): obj(),
    ("GET", f"{API_PREFIX}/mailboxes"): OWN,
    ("GET", f"{API_PREFIX}/mailboxes/expiry"): OWN,
    ("POST", f"{API_PREFIX}/mailboxes/link"): own(json=lambda o: {"email": "probe@gmail.test"}),
    ("POST", f"{API_PREFIX}/mailboxes/link-server"): own(
        json=lambda o: {"email": "probe@example.com", "password": "probe"}
    ),
    ("GET", f"{API_PREFIX}/mailboxes/{{mailbox_id}}"): obj(),
    ("PATCH", f"{API_PREFIX}/mailboxes/{{mailbox_id}}"): obj(json=lambda o: {"daily_cap": 1}),
    ("DELETE", f"{API_PREFIX}/mailboxes/{{mailbox_id}}"): obj(),
    ("GET", f"{API_PREFIX}/mailboxes/{{mailbox_id}}/resume-preview"): obj(
        owner_sees_text=False, why="no campaign of Alice's waits on her account: an empty list"
    ),
    ("POST", f"{API_PREFIX}/mailboxes/{{mailbox_id}}/resume-campaigns"): obj(),
    ("GET", f"{API_PREFIX}/mailboxes/{{mailbox_id}}/domain-health"): obj(),
    ("POST", f"{API_PREFIX}/mailboxes/{{mailbox_id}}/domain-health"): obj(
        json=lambda o: {"selectors": ["taken"]}
    ),
    ("GET", f"{API_PREFIX}/campaigns"): OWN,
    ("POST", f"{API_PREFIX}/campaigns"): obj(
        json=_campaign_json, refusals=frozenset({422}), why=ACCOUNT_IN_BODY
    ),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}"): obj(),
    ("PUT", f"{API_PREFIX}/campaigns/{{campaign_id}}"): obj(json=_campaign_json),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/recipients/import"): obj(upload=True),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/start"): obj(),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}/start-preview"): obj(),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/test-send"): obj(json=lambda o: {"step": 1}),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/pause"): obj(),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}/resume-preview"): obj(
        owner_page=False, why="Alice's campaign is a draft: a preview of its Resume is refused"
    ),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/resume"): obj(),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/archive"): obj(),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/restore"): obj(),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/duplicate"): obj(),
    ("GET", f"{API_PREFIX}/snippets"): OWN,
    ("POST", f"{API_PREFIX}/snippets"): own(json=lambda o: {"name": "Probe", "body": "Probe"}),
    ("PATCH", f"{API_PREFIX}/snippets/{{snippet_id}}"): obj(json=lambda o: {"body": "Taken"}),
    ("DELETE", f"{API_PREFIX}/snippets/{{snippet_id}}"): obj(),
    ("GET", f"{API_PREFIX}/webhooks"): OWN,
    ("POST", f"{API_PREFIX}/webhooks"): own(
        json=lambda o: {"url": "http://127.0.0.1:9/probe", "events": ["campaign.started"]}
    ),
    ("GET", f"{API_PREFIX}/webhooks/{{endpoint_id}}"): obj(owner="ada"),
    ("PATCH", f"{API_PREFIX}/webhooks/{{endpoint_id}}"): obj(
        owner="ada", json=lambda o: {"description": "Taken over", "enabled": False}
    ),
    ("DELETE", f"{API_PREFIX}/webhooks/{{endpoint_id}}"): obj(owner="ada"),
    ("GET", f"{API_PREFIX}/webhooks/{{endpoint_id}}/deliveries"): obj(
        owner="ada", owner_sees_text=False
    ),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/recipients"): obj(
        json=lambda o: {"recipients": [{"email": "probe@example.com"}]}
    ),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}/recipients"): obj(),
    ("POST", f"{API_PREFIX}/campaigns/{{campaign_id}}/recipients/actions"): obj(
        json=lambda o: {"action": "pause", "ids": [o.enrollment_id]}
    ),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}/preview"): obj(),
    ("GET", f"{API_PREFIX}/campaigns/{{campaign_id}}/events"): obj(),
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) for every route of the pages and of each mounted application.

    Static files (no object, no data) and the sandbox (the emulated third parties, served only
    with SENDWELL_SANDBOX=1) are left out; any other kind of mount is listed as ("*", path) so
    that it, too, must be classified.
    """
    return set(_walk(app.routes, ""))


def _walk(routes: list[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Mount):
            if isinstance(route.app, StaticFiles) or prefix + route.path == SANDBOX_MOUNT_PATH:
                continue
            if isinstance(route.app, FastAPI):
                yield from _walk(route.app.routes, prefix + route.path)
            else:
                yield ("*", prefix + route.path)
            continue
        for method in sorted(context.methods or {"*"}):
            if method != "HEAD":
                yield (method, prefix + str(context.path))


@dataclass
class Call:
    """One request to one route, filled in for one identity."""

    method: str
    path: str
    case: Case
    fill: dict[str, str] = field(default_factory=dict)

    def url(self, owned: Owned, *, missing: bool = False) -> str:
        values: dict[str, Any] = dict(owned.path_values())
        if missing:
            values = dict.fromkeys(values, MISSING_ID)
        return self.path.format(**values, **self.fill)

    def send(self, who: Identity, owned: Owned, *, missing: bool = False) -> httpx.Response:
        """Make the request like the identity's browser or API client would."""
        case = self.case
        target = owned if not missing else _missing(owned)
        url = self.url(owned, missing=missing)
        params = case.query(target) if case.query else None
        response: httpx.Response
        if self.path.startswith(f"{API_PREFIX}/"):
            response = who.client.request(
                self.method,
                url,
                params=params,
                json=case.json(target) if case.json else None,
                headers=who.api_headers(),
                follow_redirects=False,
            )
            return response
        if self.method == "GET":
            response = who.client.get(url, params=params, follow_redirects=False)
            return response
        form: dict[str, Any] = {"csrftoken": form_token(who)}
        if case.form:
            form.update(case.form(target))
        files = {"file": ("people.csv", b"email\nprobe@example.com\n", "text/csv")}
        response = who.client.request(
            self.method,
            url,
            params=params,
            data=form,
            files=files if case.upload else None,
            follow_redirects=False,
        )
        return response


def form_token(who: Identity) -> str:
    """The CSRF token a page shows this browser (the sign-in page for nobody's)."""
    page = who.client.get("/account" if who.token else "/sign-in")
    return csrf_from(page.text)


def _missing(owned: Owned) -> Owned:
    missing = MISSING_ID
    return Owned(
        missing,
        missing,
        missing,
        missing,
        missing,
        missing,
        "no-such-state",
        missing,
        missing,
        missing,
    )


def calls(methods_paths: set[tuple[str, str]], kind: str) -> list[Call]:
    """Every filled-in call of the classified routes of one kind, in a stable order."""
    found: list[Call] = []
    for key in sorted(methods_paths):
        case = ROUTES.get(key)
        if case is not None and case.kind == kind:
            found.extend(Call(key[0], key[1], case, fill) for fill in case.fills)
    return found
