"""Reliability runs: real processes killed, databases restarted and faults injected while
campaigns send, counted against the sandbox's sent log (`make chaos`)."""
