"""A private Dovecot (IMAP + LMTP) under a temporary folder, on free loopback ports.

Users live in a passwd-file this module rewrites, so a test can change a password while the
server runs (Dovecot re-reads the file when it changes; its auth cache is off). XOAUTH2 tokens
are checked by Dovecot's oauth2 passdb against a test introspection endpoint.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.imap_smtp.certificates import TestCertificates

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
# The master and the two services the tests use (Debian's dovecot-imapd and dovecot-lmtpd).
DOVECOT_PROGRAMS = (DOVECOT, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not listen on {port}: {log.read_text()}")


@dataclass
class Dovecot:
    root: Path
    certificates: TestCertificates
    imaps_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=dict)
    introspection_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    users_stamp: float = 1_000_000_000.0

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def auth_socket(self) -> Path:
        """Dovecot's authentication service for an MTA's SMTP AUTH (Postfix's dovecot SASL)."""
        return self.root / "run" / "auth-mta"

    def start(self) -> None:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        uid, gid, login_user, internal_user = _accounts()
        os.chown(self.mail_dir, uid, gid)
        self._write_users()
        (self.root / "oauth2.conf.ext").write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.introspection_url}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        config = self.root / "dovecot.conf"
        config.write_text(self._config(uid, gid, login_user, internal_user))
        with self.log.open("ab") as errors:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=errors
            )
        for port in (self.imaps_port, self.imap_port, self.lmtp_port):
            wait_for_port(port, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def set_password(self, user: str, password: str) -> None:
        """Change a password the way an administrator would; returns once Dovecot uses it."""
        self.passwords[user] = password
        self._write_users()
        self.wait_until_accepted(user)

    def wait_until_accepted(self, user: str) -> None:
        """Dovecot looks at the passwd-file at most once a second: wait until it has."""
        context = ssl.create_default_context(cafile=str(self.certificates.ca_file))
        deadline = time.monotonic() + 10
        while True:
            with imaplib.IMAP4_SSL(
                "127.0.0.1", self.imaps_port, ssl_context=context, timeout=10
            ) as connection:
                try:
                    connection.login(f'"{user}"', self.passwords[user])
                    return
                except imaplib.IMAP4.error:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.1)

    def reset(self, users: dict[str, str]) -> None:
        """Every mailbox emptied (deleted) and exactly these users."""
        uid, gid, _login, _internal = _accounts()
        shutil.rmtree(self.mail_dir, ignore_errors=True)
        self.mail_dir.mkdir()
        os.chown(self.mail_dir, uid, gid)
        self.passwords = dict(users)
        self._write_users()
        for user in users:
            self.wait_until_accepted(user)

    def _write_users(self) -> None:
        lines = [f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self.passwords.items()]
        staged = self.root / "users.new"
        staged.write_text("".join(lines))
        staged.chmod(0o644)
        # Dovecot re-reads the file when its mtime (whole seconds) or size changed, and not
        # while the mtime is in the future; each version gets its own past second. Renamed
        # into place so it never reads half a file.
        self.users_stamp -= 1
        os.utime(staged, (self.users_stamp, self.users_stamp))
        staged.replace(self.root / "users")

    def _config(self, uid: int, gid: int, login_user: str, internal_user: str) -> str:
        root = self.root
        return f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = sendwell-test-{root.name}
log_path = {self.log}
protocols = imap lmtp
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.certificates.cert_file}
ssl_key = <{self.certificates.key_file}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login xoauth2
auth_cache_size = 0
auth_failure_delay = 0
# Loopback is trusted: no growing penalty after the failed sign-ins the tests make.
login_trusted_networks = 127.0.0.0/8
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%d/%n
passdb {{
  driver = oauth2
  mechanisms = xoauth2
  args = {root}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = uid={uid} gid={gid} home={root}/mail/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service auth {{
  unix_listener {self.auth_socket.name} {{
{_auth_listener_owner()}
  }}
}}
# No growing delay after failed sign-ins that come through Postfix either: its requests are
# not from a login process, so login_trusted_networks does not spare them. (Dovecot's
# documented switch: the anvil process's penalty socket unusable.)
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@example.com
}}
"""


def _auth_listener_owner() -> str:
    """Postfix's smtpd runs as the postfix user: only it may ask; without Postfix, only us."""
    if os.geteuid() == 0:
        try:
            postfix = pwd.getpwnam("postfix")
        except KeyError:
            return "    mode = 0600"
        return f"    mode = 0600\n    user = {postfix.pw_name}"
    return "    mode = 0600"


def _accounts() -> tuple[int, int, str, str]:
    """Mail files' owner and Dovecot's unprivileged users: its own when run as root."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("dovenull")
        internal = pwd.getpwnam("dovecot")
        return internal.pw_uid, internal.pw_gid, nobody.pw_name, internal.pw_name
    me = pwd.getpwuid(os.geteuid())
    return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
