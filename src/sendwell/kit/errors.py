"""Errors that services raise and the web and API layers translate for the user."""

from __future__ import annotations


class SendwellError(Exception):
    """A failure the user can act on: a stable code, an HTTP status and a sentence."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(SendwellError):
    status_code = 422
    code = "invalid_input"


class NotFound(SendwellError):
    status_code = 404
    code = "not_found"


class Conflict(SendwellError):
    status_code = 409
    code = "conflict"


class NotAuthenticated(SendwellError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(SendwellError):
    status_code = 403
    code = "forbidden"


class TooManyAttempts(SendwellError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
