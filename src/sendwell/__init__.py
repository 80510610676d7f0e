"""Sendwell: outreach campaigns from your own mailbox that survive reconnects."""

__version__ = "0.1.0"
