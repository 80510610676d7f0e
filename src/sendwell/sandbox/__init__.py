"""Emulated Google and Microsoft OAuth and mail APIs, for tests and the local demo only."""
