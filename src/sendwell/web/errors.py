"""How errors are answered: JSON bodies for the API, pages for the browser."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sendwell.kit.errors import SendwellError
from sendwell.web.csrf import CsrfRefused
from sendwell.web.pages import render, templates
from sendwell.web.paths import API_PREFIX

HTTP_ERROR_CODES = {
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_requests",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


class FieldProblem(BaseModel):
    field: str = Field(description="Where in the request, e.g. `steps.0.subject` or `body`.")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for programs: `not_found`, `invalid_request`, …")
    message: str = Field(description="A sentence for people.")
    details: list[FieldProblem] | None = Field(
        default=None, description="Each invalid field (422 `invalid_request` only)."
    )


class ErrorOut(BaseModel):
    error: ErrorDetail


API_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "The request body could not be read.",
        401: "No API token, or one that is not valid or was revoked.",
        403: "Not allowed.",
        404: "No such endpoint, or no such object among those you can see.",
        409: "The object's state does not allow this now.",
        413: "The request body is larger than the server accepts.",
        422: "The request is malformed or a value is not acceptable.",
        429: "Too many attempts; `Retry-After` says when to try again.",
    }.items()
}


# A value the database cannot hold — an id or offset beyond its integers, which names no row —
# is the request's fault wherever it came from: SQLite's driver refuses to bind it
# (OverflowError), PostgreSQL refuses the query (DataError). Both roll the unit of work back.
DOES_NOT_FIT = (OverflowError, DataError)
DOES_NOT_FIT_MESSAGE = "A value in the request is larger than Sendwell can store."


def add_api_error_handlers(api: FastAPI) -> None:
    """Every JSON API error as `{"error": {"code", "message"}}`, with its status."""

    async def does_not_fit(_request: Request, _error: Exception) -> JSONResponse:
        return JSONResponse(error_body("out_of_range", DOES_NOT_FIT_MESSAGE), status_code=422)

    for kind in DOES_NOT_FIT:
        api.add_exception_handler(kind, does_not_fit)

    @api.exception_handler(SendwellError)
    async def sendwell_error(_request: Request, error: SendwellError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        retry_after = getattr(error, "retry_after_seconds", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        return JSONResponse(
            error_body(error.code, error.message), status_code=error.status_code, headers=headers
        )

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(error.status_code, "http_error")
        message = error.detail if isinstance(error.detail, str) else "Request failed."
        if error.status_code == 404:
            message = "No such endpoint or object."
        return JSONResponse(
            error_body(code, message),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(part) for part in item["loc"][1:]) or "body",
                "message": item["msg"],
            }
            for item in error.errors()
        ]
        if any(item["type"] == "json_invalid" for item in error.errors()):
            return JSONResponse(
                error_body(
                    "malformed_json", "The request body is not valid JSON.", details=problems
                ),
                status_code=422,
            )
        first = problems[0]
        return JSONResponse(
            error_body(
                "invalid_request", f"{first['field']}: {first['message']}", details=problems
            ),
            status_code=422,
        )


def add_page_error_handlers(app: FastAPI) -> None:
    """Every page error as a page that says what happened and what to do."""

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(_request: Request, _error: CsrfRefused) -> Response:
        body = templates.get_template("csrf_failed.html").render()
        return HTMLResponse(body, status_code=403)

    @app.exception_handler(SendwellError)
    async def sendwell_error(request: Request, error: SendwellError) -> Response:
        return render(
            request,
            "error.html",
            {"title": "Something needs your attention", "message": error.message},
            status_code=error.status_code,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if request.url.path.startswith(f"{API_PREFIX}/"):
            # An API address the sub-application's routes cannot even parse (a line break in
            # the path) lands here; its answer is JSON all the same.
            code = HTTP_ERROR_CODES.get(error.status_code, "http_error")
            message = "No such endpoint or object." if error.status_code == 404 else error.detail
            return JSONResponse(error_body(code, str(message)), status_code=error.status_code)
        titles = {
            404: "Page not found",
            405: "That action is not available here",
            413: "That was too large",
        }
        message = (
            "There is nothing at this address. Check the link, or go back to Messaging."
            if error.status_code == 404
            else str(error.detail)
        )
        return render(
            request,
            "error.html",
            {"title": titles.get(error.status_code, "Request failed"), "message": message},
            status_code=error.status_code,
        )

    async def does_not_fit(request: Request, _error: Exception) -> Response:
        return render(
            request,
            "error.html",
            {"title": "That request was not understood", "message": DOES_NOT_FIT_MESSAGE},
            status_code=422,
        )

    for kind in DOES_NOT_FIT:
        app.add_exception_handler(kind, does_not_fit)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, _error: RequestValidationError) -> Response:
        return render(
            request,
            "error.html",
            {
                "title": "That request was not understood",
                "message": "Part of the address or form is missing or malformed. "
                "Go back and try again.",
            },
            status_code=422,
        )
