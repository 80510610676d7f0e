"""Sending from a teammate's mailbox with their approval, which they can withdraw at any time."""
