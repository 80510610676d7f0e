"""The webhooks tests' world and loopback receiver, reused for the deployment test."""

from tests.webhooks.conftest import receiver, world

__all__ = ["receiver", "world"]
