"""Campaigns: the Campaigns tab of Messaging."""
