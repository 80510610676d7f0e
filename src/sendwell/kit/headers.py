"""What no header value we write may hold (subjects, display names, signatures)."""

from __future__ import annotations

# NUL and every character str.splitlines() breaks at: the email package refuses them all.
HEADER_FORBIDDEN = (
    "\0",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
)
