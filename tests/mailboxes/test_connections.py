"""Which hosts a server links, and how: asked of the hosts' capabilities, never of their names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sendwell.kit.errors import InvalidInput
from sendwell.mailboxes.provider_services import ProviderServices, build_services
from sendwell.providers.base import ProviderName
from sendwell.providers.registry import build_registry, make_http_client
from tests.conftest import make_settings


@pytest.fixture
def google_only() -> Iterator[ProviderServices]:
    """A server whose administrator configured Google sign-in and nothing else."""
    settings = make_settings("sqlite://", google_client_id="client", google_client_secret="secret")
    with make_http_client(settings) as http:
        yield build_services(settings, build_registry(settings, http))


def test_hosts_offered_are_the_configured_ones_and_imap_smtp(google_only: ProviderServices) -> None:
    assert google_only.linkable() == [ProviderName.GOOGLE, ProviderName.IMAP]
    assert google_only.sign_in("google").name is ProviderName.GOOGLE
    assert google_only.mail_host("imap").name is ProviderName.IMAP


def test_a_host_without_sign_in_page_asks_for_server_settings(
    google_only: ProviderServices,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        google_only.sign_in("imap")
    assert refused.value.code == "server_settings_needed"
    assert refused.value.message == (
        "IMAP/SMTP accounts have no sign-in page: enter their server settings and password instead."
    )


@pytest.mark.parametrize("name", ["microsoft", "yahoo"])
def test_a_host_not_configured_here_is_refused_in_words(
    google_only: ProviderServices, name: str
) -> None:
    label = "Microsoft" if name == "microsoft" else name
    for lookup in (google_only.sign_in, google_only.mail_host):
        with pytest.raises(InvalidInput) as refused:
            lookup(name)
        assert refused.value.code == "provider_not_configured"
        assert refused.value.message.startswith(f"{label} accounts cannot be linked on this server")
