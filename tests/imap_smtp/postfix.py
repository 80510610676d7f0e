"""A private Postfix under a temporary folder: a mail host's submission services on free ports.

Two services, as hosts offer them: implicit TLS (the port 465 kind) and submission that
requires STARTTLS before anything else (the port 587 kind). Senders sign in through Dovecot's
authentication service and may send only as themselves. Postfix knows the test domain's
mailboxes (an unknown one is refused at RCPT), puts ``busy@example.com`` off with 451 as a
greylisting host would, and hands every accepted message to Dovecot over LMTP. Dovecot knows
no other domain's users, so mail to one comes back to its sender as Postfix's own delivery
report. Postfix delivers after it has answered; ``settle`` waits for its queue to empty.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.imap_smtp.certificates import TestCertificates
from tests.imap_smtp.dovecot import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")
LOCAL_DOMAIN = "example.com"
BUSY = "busy@example.com"
# Where Postfix keeps a message until it has been delivered or bounced.
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
# The services the tests need; no chroot, so paths outside the queue folder work as written.
SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str:
    """Why Postfix cannot run here, or '' when it can."""
    if not Path(POSTFIX).exists() or not (POSTFIX_DAEMONS / "master").exists():
        return f"Postfix is not installed ({POSTFIX} or {POSTFIX_DAEMONS}/master missing)"
    if os.geteuid() != 0:
        return "Postfix starts only as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist"
    return ""


@dataclass
class Postfix:
    root: Path
    certificates: TestCertificates
    auth_socket: Path
    lmtp_port: int
    users: Iterable[str]
    smtps_port: int = field(default_factory=free_port)
    submission_port: int = field(default_factory=free_port)

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postfix.log"

    def start(self) -> None:
        for folder in (self.config_dir, self.queue_dir, self.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        owner = pwd.getpwnam("postfix")
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)  # Its locks and TLS caches.
        users = sorted(self.users)
        self._table("mailboxes", dict.fromkeys(users, "ok"))
        self._table("senders", {user: user for user in users})
        self._table("recipient_access", {BUSY: "451 4.3.0 Temporary failure, try again later"})
        (self.config_dir / "main.cf").write_text(self._main())
        (self.config_dir / "master.cf").write_text(self._master())
        # "postfix start" checks the set-up, makes the queue folders, and returns once the
        # master daemon is ready; it detaches, so "stop" (below) is what ends it.
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{self._log_text()}")
        for port in (self.smtps_port, self.submission_port):
            self._wait_for_port(port)

    def stop(self) -> None:
        """Waits (up to five seconds, then kills) until the master daemon has gone."""
        self._postfix("stop")

    def settle(self, timeout: float = 15) -> None:
        """Return once every accepted message is delivered or bounced (the queue is empty)."""
        deadline = time.monotonic() + timeout
        while any(self._queued()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix still holds {self._queued()}: {self._log_text()}")
            time.sleep(0.05)

    def log_mark(self) -> int:
        """Where the log ends now, for ``sessions_after``."""
        return self.log.stat().st_size if self.log.exists() else 0

    def sessions_after(self, mark: int, timeout: float = 10) -> list[str]:
        """The summary lines ("disconnect from … auth=0/1 …", one per SMTP connection) logged
        since ``mark``; waits for the first, as Postfix logs through its postlogd service."""
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as log:
                log.seek(mark)
                lines = log.read().decode("utf-8", "replace").splitlines()
            found = [line for line in lines if "smtpd[" in line and " disconnect from " in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def _queued(self) -> list[str]:
        return [
            f"{queue}/{path.name}"
            for queue in QUEUES
            for path in (self.queue_dir / queue).rglob("*")
            if path.is_file()
        ]

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"postfix did not listen on {port}: {self._log_text()}")

    def _postfix(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def _log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def _table(self, name: str, entries: dict[str, str]) -> None:
        lines = "".join(f"{key} {value}\n" for key, value in entries.items())
        (self.config_dir / name).write_text(lines)

    def _main(self) -> str:
        etc, root = self.config_dir, self.root
        return f"""\
compatibility_level = 3.6
queue_directory = {self.queue_dir}
data_directory = {self.data_dir}
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {self.log}
myhostname = mail.{LOCAL_DOMAIN}
mydomain = {LOCAL_DOMAIN}
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.1/32
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP
# Every sign-in goes through Dovecot, and only once the connection is encrypted.
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {self.certificates.cert_file}
smtpd_tls_key_file = {self.certificates.key_file}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.auth_socket}
smtpd_sender_login_maps = texthash:{etc}/senders
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access texthash:{etc}/recipient_access
virtual_mailbox_domains = {LOCAL_DOMAIN}
virtual_mailbox_maps = texthash:{etc}/mailboxes
virtual_transport = lmtp:inet:127.0.0.1:{self.lmtp_port}
# "Other domains" are Dovecot's too: it refuses their users, so Postfix bounces the mail.
default_transport = lmtp:inet:127.0.0.1:{self.lmtp_port}
relay_transport = lmtp:inet:127.0.0.1:{self.lmtp_port}
"""

    def _master(self) -> str:
        return (
            f"127.0.0.1:{self.smtps_port} inet n - n - - smtpd\n"
            "  -o syslog_name=postfix/smtps\n"
            "  -o smtpd_tls_wrappermode=yes\n"
            f"127.0.0.1:{self.submission_port} inet n - n - - smtpd\n"
            "  -o syslog_name=postfix/submission\n" + SERVICES
        )
