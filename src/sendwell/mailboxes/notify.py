"""Telling a user by email that an account needs them (when the server has outgoing mail)."""

from __future__ import annotations

from sendwell.kit.notices import SmtpTarget, send_notice


class ReauthNotifier:
    """Sends "your account needs reauthentication" emails; failures are logged, never raised."""

    def __init__(self, target: SmtpTarget, base_url: str, timeout: float = 10.0) -> None:
        self.target = target
        self.base_url = base_url
        self.timeout = timeout

    def __call__(self, to: str, mailbox_email: str, reason: str, paused: int) -> None:
        waiting = (
            f"{paused} campaign{'s are' if paused != 1 else ' is'} paused until you "
            "reconnect it and resume."
            if paused
            else "Nothing can be sent from it."
        )
        send_notice(
            self.target,
            to,
            f"Action needed: reconnect {mailbox_email} in Sendwell",
            f"Sendwell can no longer use {mailbox_email}. {waiting}\n\n"
            f"Why: {reason}\n\n"
            f"Reauthenticate it on the Settings tab: {self.base_url}/messaging/settings\n"
            "After reconnecting, resume the paused campaigns; they continue from where they "
            "left off.\n",
            timeout=self.timeout,
        )
