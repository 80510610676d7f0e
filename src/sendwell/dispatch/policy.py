"""What the sending engine's pieces share: its policy and the claim a worker holds.

Below `engine`, `outcomes` and `inbound`, so that they import it and never each other in a
circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class DispatchPolicy:
    lease: timedelta
    inbound_interval: timedelta
    # How seldom a quiet inbox is read, at the least (inbound.next_interval); None: every
    # inbox every `inbound_interval`.
    inbound_quiet_interval: timedelta | None = None
    # After a send's outcome became unknown, how long before looking for it in Sent: the
    # host may still be finishing a request the client stopped waiting for.
    settle_grace: timedelta = timedelta(seconds=60)
    max_attempts: int = 5
    failures_before_pause: int = 10
    # Host calls one worker makes at once, each for a different mailbox (flight.py).
    calls_in_flight: int = 8


@dataclass(frozen=True)
class Claim:
    ledger_id: int
    mailbox_id: int
