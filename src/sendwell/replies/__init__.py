"""Replies: who answered a campaign's emails, when, a link to the thread, and interest marks."""
