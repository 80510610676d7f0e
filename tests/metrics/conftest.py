"""The webhooks tests' world (a linked sandbox mailbox, loopback receivers allowed), reused."""

from tests.webhooks.conftest import receiver, world

__all__ = ["receiver", "world"]
