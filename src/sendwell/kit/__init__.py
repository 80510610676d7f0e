"""Small shared pieces used across features."""
