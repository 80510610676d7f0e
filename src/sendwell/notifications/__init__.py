"""Notifications: the emails that tell people of a change that needs them, sent once it commits."""
