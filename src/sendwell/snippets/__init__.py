"""Saved pieces of subject and body text, shared by the workspace."""
