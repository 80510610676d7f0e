"""The expected expiry of each mode, computed from stored facts alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sendwell.mailboxes.expiry import (
    ExpiryReason,
    ExpiryRules,
    MailboxFacts,
    expected_expiry,
    keep_alive_due,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRODUCTION = ExpiryRules()
TESTING = ExpiryRules(google_testing=True)


def google(**facts: datetime) -> MailboxFacts:
    return MailboxFacts(provider="google", **facts)


def microsoft(**facts: datetime) -> MailboxFacts:
    return MailboxFacts(provider="microsoft", **facts)


def test_a_google_app_in_testing_ends_seven_days_after_consent_and_warns_two_days_ahead() -> None:
    granted = NOW - timedelta(days=1)
    expiry = expected_expiry(google(granted_at=granted, last_used_at=NOW), TESTING)
    assert expiry is not None
    assert (expiry.reason, expiry.at) == (ExpiryReason.GOOGLE_TESTING_APP, granted + timedelta(7))
    assert "publishing the Google app" in expiry.action
    assert not expiry.warning_due(granted + timedelta(days=4, hours=23))
    assert expiry.warning_due(granted + timedelta(days=5))


def test_refreshing_does_not_extend_a_testing_grant() -> None:
    granted = NOW - timedelta(days=6)
    expiry = expected_expiry(google(granted_at=granted, last_used_at=NOW), TESTING)
    assert expiry is not None
    assert expiry.at == granted + timedelta(days=7)


def test_a_published_google_app_ends_only_after_six_months_unused() -> None:
    used = NOW - timedelta(days=10)
    expiry = expected_expiry(google(granted_at=NOW - timedelta(300), last_used_at=used), PRODUCTION)
    assert expiry is not None
    assert (expiry.reason, expiry.at) == (ExpiryReason.GOOGLE_UNUSED, used + timedelta(183))
    assert expiry.kept_alive
    assert expiry.warn_from == expiry.at - timedelta(days=7)


def test_microsoft_ends_after_ninety_days_unused() -> None:
    used = NOW - timedelta(days=1)
    expiry = expected_expiry(microsoft(granted_at=used, last_used_at=used), PRODUCTION)
    assert expiry is not None
    assert (expiry.reason, expiry.at) == (ExpiryReason.MICROSOFT_UNUSED, used + timedelta(90))


def test_an_expiring_client_secret_comes_first_and_concerns_the_whole_workspace() -> None:
    rules = ExpiryRules.from_settings(
        google_publishing_status="production",
        microsoft_client_secret_expires=date(2026, 3, 10),
        expiry_warning_days=7,
        testing_warning_days=2,
    )
    expiry = expected_expiry(microsoft(granted_at=NOW, last_used_at=NOW), rules)
    assert expiry is not None
    assert expiry.reason is ExpiryReason.MICROSOFT_CLIENT_SECRET
    assert expiry.at == datetime(2026, 3, 10, tzinfo=UTC)
    assert expiry.workspace_wide
    assert "SENDWELL_MICROSOFT_CLIENT_SECRET" in expiry.action
    assert expiry.warning_due(datetime(2026, 3, 3, tzinfo=UTC))
    assert not expiry.warning_due(datetime(2026, 3, 2, 23, tzinfo=UTC))


def test_a_client_secret_does_not_concern_google_accounts() -> None:
    rules = ExpiryRules(microsoft_secret_expires_at=NOW)
    expiry = expected_expiry(google(granted_at=NOW, last_used_at=NOW), rules)
    assert expiry is not None
    assert expiry.reason is ExpiryReason.GOOGLE_UNUSED


def test_a_server_certificate_is_the_expiry_of_an_imap_smtp_account() -> None:
    ends = NOW + timedelta(days=3)
    expiry = expected_expiry(MailboxFacts(provider="imap", certificate_expires_at=ends), PRODUCTION)
    assert expiry is not None
    assert (expiry.reason, expiry.at) == (ExpiryReason.SERVER_CERTIFICATE, ends)
    assert not expiry.kept_alive
    assert expected_expiry(MailboxFacts(provider="imap"), PRODUCTION) is None


def test_the_warning_lead_times_follow_the_settings() -> None:
    rules = ExpiryRules(google_testing=True, testing_warning_lead=timedelta(days=3))
    granted = NOW
    expiry = expected_expiry(google(granted_at=granted, last_used_at=granted), rules)
    assert expiry is not None
    assert expiry.warn_from == granted + timedelta(days=4)


def test_keep_alive_is_due_a_month_before_the_disuse_limit_and_not_sooner() -> None:
    fresh = microsoft(last_used_at=NOW - timedelta(days=59))
    stale = microsoft(last_used_at=NOW - timedelta(days=61))
    assert not keep_alive_due(fresh, PRODUCTION, NOW)
    assert keep_alive_due(stale, PRODUCTION, NOW)
    assert keep_alive_due(google(last_used_at=NOW - timedelta(days=154)), PRODUCTION, NOW)
    assert not keep_alive_due(MailboxFacts(provider="imap"), PRODUCTION, NOW)
    # A long warning time moves the keep-alive earlier, so no warning precedes it.
    early = ExpiryRules(warning_lead=timedelta(days=45))
    assert keep_alive_due(microsoft(last_used_at=NOW - timedelta(days=45)), early, NOW)
