"""Domain health: what MX, SPF, DKIM and DMARC say about a mailbox's sending domain, what
that means for delivery, and the record to add. Sources are in docs/providers.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sendwell.providers.base import ProviderName
from sendwell.providers.discovery import CONSUMER_DOMAINS, DiscoveredProvider, domain_of
from sendwell.providers.domain_dns import Answer, DomainDns

CHECKS = ("MX", "SPF", "DKIM", "DMARC")
# How bad a status is; "unknown" (DNS did not answer) is never compared.
RANK = {"ok": 0, "provider": 0, "warning": 1, "missing": 2}
USUAL_SELECTORS = {
    ProviderName.GOOGLE: ("google",),
    ProviderName.MICROSOFT: ("selector1", "selector2"),
}
SPF_INCLUDES = {
    ProviderName.GOOGLE: "_spf.google.com",
    ProviderName.MICROSOFT: "spf.protection.outlook.com",
}
HOST_NAMES = {DiscoveredProvider.GOOGLE: "Google", DiscoveredProvider.MICROSOFT: "Microsoft"}
# In the sandbox these stand for gmail.com and outlook.com (their subdomains are tenants).
SANDBOX_CONSUMERS = {"gmail.test": "Google", "outlook.test": "Microsoft"}
GMAIL_RULES = (
    "Gmail requires SPF or DKIM from every sender, and SPF, DKIM and DMARC from bulk senders"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warning, missing, unknown, provider
    found: str
    meaning: str
    record: str = ""


@dataclass(frozen=True)
class Report:
    domain: str
    handled_by: str
    checks: list[Check]

    def results(self) -> list[dict[str, Any]]:
        return [asdict(check) for check in self.checks]


def handled_by(domain: str, *, sandbox: bool) -> str:
    """The host that publishes and signs for a consumer domain (gmail.com…), else ""."""
    if sandbox and domain in SANDBOX_CONSUMERS:
        return SANDBOX_CONSUMERS[domain]
    found = CONSUMER_DOMAINS.get(domain)
    return HOST_NAMES.get(found, "") if found else ""


def assess(
    address: str,
    provider: ProviderName,
    selectors: list[str],
    dns: DomainDns,
    *,
    sandbox: bool = False,
) -> Report:
    """Look the sending domain up and judge each record; consumer domains need nothing."""
    domain = domain_of(address)
    host = handled_by(domain, sandbox=sandbox)
    if host:
        return Report(domain, host, [])
    named = list(dict.fromkeys([*USUAL_SELECTORS.get(provider, ()), *selectors]))
    return Report(
        domain,
        "",
        [
            _mx(domain, provider, dns.mx(domain)),
            _spf(domain, provider, dns.txt(domain)),
            _dkim(domain, provider, named, {s: dns.txt(f"{s}._domainkey.{domain}") for s in named}),
            _dmarc(domain, dns.txt(f"_dmarc.{domain}")),
        ],
    )


def worsened(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """The checks that got worse, in words ("SPF: ok → missing"); unknowns never count."""
    old = {c["name"]: c["status"] for c in before}
    changes = []
    for check in after:
        was, now = old.get(check["name"]), check["status"]
        if was in RANK and now in RANK and RANK[now] > RANK[was]:
            changes.append(f"{check['name']}: {was} → {now}")
    return changes


def _unknown(name: str, answer: Answer) -> Check:
    return Check(
        name,
        "unknown",
        "",
        f"Could not be checked: DNS gave {answer.failure}. It is checked again at the next "
        "health check.",
    )


def _mx(domain: str, provider: ProviderName, answer: Answer) -> Check:
    if answer.failure:
        return _unknown("MX", answer)
    if answer.records:
        return Check(
            "MX",
            "ok",
            ", ".join(answer.records),
            "Replies and bounces reach this domain's mail servers.",
        )
    record = {
        ProviderName.GOOGLE: f"{domain}. MX 1 smtp.google.com.",
        ProviderName.MICROSOFT: f"{domain}. MX 0 {domain.replace('.', '-')}"
        ".mail.protection.outlook.com.",
    }.get(provider, f"{domain}. MX 10 <your mail host's server>.")
    return Check(
        "MX",
        "missing",
        "no MX record",
        "Nobody can write back: replies to your campaigns and bounce notices cannot be "
        "delivered, and many receivers refuse mail from a domain that cannot receive mail.",
        record,
    )


def _spf(domain: str, provider: ProviderName, answer: Answer) -> Check:
    if answer.failure:
        return _unknown("SPF", answer)
    records = [r for r in answer.records if r.lower().startswith("v=spf1")]
    include = SPF_INCLUDES.get(provider, "<your mail host's SPF domain>")
    suggested = f'{domain}. TXT "v=spf1 include:{include} ~all"'
    if not records:
        return Check(
            "SPF",
            "missing",
            "no SPF record",
            "Receivers cannot tell that your mail host may send for this domain, so your "
            f"emails are more likely to be marked as spam or refused; {GMAIL_RULES}.",
            suggested,
        )
    if len(records) > 1:
        return Check(
            "SPF",
            "warning",
            " | ".join(records),
            "Two SPF records make SPF fail for every message (RFC 7208: a permanent error). "
            "Merge them into one.",
            suggested,
        )
    (record,) = records
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return Check(
            "SPF",
            "warning",
            record,
            "It lets any server in the world send as this domain, which receivers distrust.",
            suggested,
        )
    wanted = SPF_INCLUDES.get(provider)
    if (
        wanted
        and f"include:{wanted}" not in terms
        and not any(t.startswith("redirect=") for t in terms)
    ):
        return Check(
            "SPF",
            "warning",
            record,
            f"It does not name {provider.label}, so mail sent through it fails SPF.",
            f'Add include:{wanted} to it: "v=spf1 include:{wanted} … ~all"',
        )
    return Check("SPF", "ok", record, "Receivers can check that your mail host may send for it.")


def _dkim(
    domain: str, provider: ProviderName, selectors: list[str], answers: dict[str, Answer]
) -> Check:
    if not selectors:
        return Check(
            "DKIM",
            "unknown",
            "",
            "Name the DKIM selector your mail host signs with (below) to check its key.",
        )
    keys = {
        s: r
        for s, a in answers.items()
        for r in a.records
        if "p=" in r.replace(" ", "").lower() or r.lower().startswith("v=dkim1")
    }
    published = {s: r for s, r in keys.items() if _key_of(r)}
    if published:
        return Check(
            "DKIM",
            "ok",
            ", ".join(f"{s}._domainkey" for s in published),
            "Your messages can be signed with this domain, which DMARC and receivers trust.",
        )
    failed = [a for a in answers.values() if a.failure]
    if failed and len(failed) == len(answers):
        return _unknown("DKIM", failed[0])
    names = ", ".join(f"{s}._domainkey.{domain}" for s in selectors)
    if keys:
        return Check(
            "DKIM",
            "warning",
            names,
            "The key is empty (revoked), so signatures fail.",
            _dkim_record(domain, provider),
        )
    return Check(
        "DKIM",
        "missing",
        f"no key at {names}",
        "Your messages are not signed with this domain, so DMARC can pass through SPF alone "
        f"and forwarded mail fails; {GMAIL_RULES}.",
        _dkim_record(domain, provider),
    )


def _key_of(record: str) -> str:
    for tag in record.replace(" ", "").split(";"):
        name, _, value = tag.partition("=")
        if name.lower() == "p":
            return value
    return ""


def _dkim_record(domain: str, provider: ProviderName) -> str:
    if provider is ProviderName.GOOGLE:
        return (
            f'google._domainkey.{domain}. TXT "v=DKIM1; k=rsa; p=…" — the key from the Google '
            "Admin console (Apps > Google Workspace > Gmail > Authenticate email), then Start "
            "authentication"
        )
    if provider is ProviderName.MICROSOFT:
        dashed = domain.replace(".", "-")
        return (
            f"selector1._domainkey.{domain}. CNAME selector1-{dashed}._domainkey.<your "
            f"tenant>.onmicrosoft.com. and selector2 likewise — the values shown in the "
            "Microsoft Defender portal (Email authentication settings > DKIM), then enable "
            "signing"
        )
    return f'<selector>._domainkey.{domain}. TXT "v=DKIM1; k=rsa; p=…" — from your mail host'


def _dmarc(domain: str, answer: Answer) -> Check:
    if answer.failure:
        return _unknown("DMARC", answer)
    records = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    suggested = f'_dmarc.{domain}. TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"'
    if not records:
        return Check(
            "DMARC",
            "missing",
            "no DMARC record",
            "Receivers decide alone what to do with mail that fails SPF and DKIM, and bulk "
            "senders to Gmail and Yahoo must publish one (p=none is enough).",
            suggested,
        )
    if len(records) > 1:
        return Check(
            "DMARC",
            "warning",
            " | ".join(records),
            "Several DMARC records count as none (RFC 7489). Keep one.",
            suggested,
        )
    (record,) = records
    policy = next(
        (
            tag.partition("=")[2].strip().lower()
            for tag in record.split(";")
            if tag.strip().lower().startswith("p=")
        ),
        "",
    )
    meaning = {
        "none": "Monitoring only: it meets the bulk-sender requirement; once its reports show "
        "your mail passing, quarantine or reject protects the domain from spoofing.",
        "quarantine": "Mail failing SPF and DKIM for this domain goes to spam.",
        "reject": "Mail failing SPF and DKIM for this domain is refused.",
    }.get(policy, "")
    if not meaning:
        return Check(
            "DMARC",
            "warning",
            record,
            "It has no valid policy (p=none, quarantine or reject), so receivers ignore it.",
            suggested,
        )
    return Check("DMARC", "ok", record, meaning)
