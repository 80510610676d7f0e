"""With several `sendwell serve` processes, each mailbox is still checked once per interval."""

from __future__ import annotations

from datetime import timedelta

from sendwell.mailboxes.tasks import check_due_connections
from tests.dispatch.conftest import World

INTERVAL = timedelta(minutes=10)


def test_a_mailbox_checked_by_one_process_is_skipped_by_the_next(world: World) -> None:
    first = check_due_connections(world.factory, world.services, INTERVAL)
    second = check_due_connections(world.factory, world.services, INTERVAL)

    assert (first.checked, first.healthy) == (1, 1)
    assert second.checked == 0


def test_a_mailbox_is_checked_again_once_half_the_interval_has_passed(world: World) -> None:
    check_due_connections(world.factory, world.services, INTERVAL)
    again = check_due_connections(world.factory, world.services, timedelta(seconds=0))

    assert again.checked == 1
