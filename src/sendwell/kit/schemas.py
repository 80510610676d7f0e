"""What every JSON request body shares: text that can be stored and sent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

_SURROGATES = range(0xD800, 0xE000)


def has_lone_surrogate(value: object) -> bool:
    """True when any text in a JSON value holds a UTF-16 surrogate on its own.

    JSON's "\\ud800" escapes decode to such characters; no database or email can store them.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(ord(char) in _SURROGATES for char in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class RequestBody(BaseModel):
    """A JSON request body: refuses text that is not valid Unicode, whatever the field."""

    @model_validator(mode="before")
    @classmethod
    def _text_is_unicode(cls, data: Any) -> Any:
        if has_lone_surrogate(data):
            raise ValueError(
                "text contains a lone UTF-16 surrogate (such as \\ud800), which is not a "
                "character; send valid Unicode text"
            )
        return data
