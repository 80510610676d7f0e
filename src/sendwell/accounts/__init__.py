"""Users, sign-in, browser sessions and API tokens."""
