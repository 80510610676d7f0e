"""Words for what the pages show from stored codes: activity lines and account settings."""

from __future__ import annotations

EVENT_WORDS = {
    "created": "Created",
    "edited": "Edited",
    "duplicated": "Duplicated",
    "started": "Started",
    "paused": "Paused",
    "resumed": "Resumed",
    "completed": "Completed",
    "reopened": "Reopened",
    "archived": "Archived",
    "restored": "Restored",
    "reassigned": "Reassigned",
    "recipients_added": "Recipients added",
    "recipient_held": "Recipient held after an automatic reply",
    "hold_ended": "Hold ended",
}


def event_words(kind: str) -> str:
    """An activity line's title; a kind without words of its own reads as a sentence."""
    return EVENT_WORDS.get(kind) or kind.replace("_", " ").capitalize()
