"""Mailboxes: the Settings tab of Messaging, where email accounts are linked."""
