"""Gmail bodies checked against Google's discovery document (from google-api-python-client).

Every Gmail request body and successful response body that passes through the test sandbox is
checked against the method's schema: `$ref`s resolved, JSON types, the string-encoded integer
formats (`int64`/`uint64` are strings in Gmail's JSON, e.g. `historyId`, `internalDate`),
`byte` (base64url), fields the schema does not know, and fields required for the method.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCUMENT = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "gmail.v1.json"
GMAIL_MARK = "/google/gmail/"
DIGITS = re.compile(r"^-?\d+$")
BASE64URL = re.compile(r"^[A-Za-z0-9_\-]*={0,2}$")
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


@cache
def methods() -> tuple[tuple[str, re.Pattern[str], dict[str, Any]], ...]:
    """(HTTP method, path pattern, method description) for every Gmail method."""
    found: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []

    def walk(resource: dict[str, Any]) -> None:
        for method in resource.get("methods", {}).values():
            parts = re.split(r"\{\+?[A-Za-z]+\}", method["path"])
            pattern = "[^/]+".join(re.escape(part) for part in parts)
            found.append((method["httpMethod"], re.compile(f"^{pattern}$"), method))
        for child in resource.get("resources", {}).values():
            walk(child)

    walk(document())
    return tuple(found)


def method_for(http_method: str, path: str) -> dict[str, Any] | None:
    """The discovery method for a request path such as `gmail/v1/users/me/profile`."""
    for verb, pattern, method in methods():
        if verb == http_method and pattern.match(path):
            return method
    return None


def problems(value: Any, schema: dict[str, Any], where: str, method_id: str) -> list[str]:
    """How a JSON value departs from a discovery schema (empty when it conforms)."""
    if "$ref" in schema:
        return problems(value, document()["schemas"][schema["$ref"]], where, method_id)
    kind = schema.get("type", "any")
    if kind == "object":
        return _object_problems(value, schema, where, method_id)
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {value!r}"]
        return [
            p
            for i, item in enumerate(value)
            for p in problems(item, schema["items"], f"{where}[{i}]", method_id)
        ]
    return _scalar_problems(value, kind, schema.get("format", ""), where)


def _object_problems(value: Any, schema: dict[str, Any], where: str, method_id: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {value!r}"]
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    found = []
    for name, item in value.items():
        if name in properties:
            found += problems(item, properties[name], f"{where}.{name}", method_id)
        elif extra is not None:
            found += problems(item, extra, f"{where}.{name}", method_id)
        else:
            found.append(f"{where}.{name}: not in the schema")
    for name, spec in properties.items():
        required = spec.get("annotations", {}).get("required", [])
        if method_id in required and name not in value:
            found.append(f"{where}.{name}: required for {method_id}")
    return found


def _scalar_problems(value: Any, kind: str, fmt: str, where: str) -> list[str]:
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string ({fmt or 'text'}), got {value!r}"]
        if fmt in ("int64", "uint64") and not DIGITS.match(value):
            return [f"{where}: expected a decimal {fmt} in a string, got {value!r}"]
        if fmt == "byte" and not BASE64URL.match(value):
            return [f"{where}: expected base64url bytes, got {value[:40]!r}"]
        return []
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected an integer, got {value!r}"]
        low, high = INT_RANGES.get(fmt, (value, value))
        return [] if low <= value <= high else [f"{where}: {value} is out of {fmt} range"]
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected a number, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
    return []


def exchange_problems(
    http_method: str, path: str, request_body: bytes, status: int, response_body: bytes
) -> list[str]:
    """Problems with one Gmail request and its answer (error answers are not in the schema)."""
    relative = path.split(GMAIL_MARK, 1)[1]
    method = method_for(http_method, f"gmail/{relative}")
    if method is None:
        return [f"{http_method} {path}: no such Gmail method in the discovery document"]
    label = f"{method['id']}"
    found: list[str] = []
    if "request" in method and request_body:
        body = _json(request_body)
        found += problems(body, method["request"], f"{label} request", method["id"])
    if 200 <= status < 300 and "response" in method:
        body = _json(response_body)
        # "required" annotations name the requests a field is required in, not the answers.
        found += problems(body, method["response"], f"{label} response", "")
    return found


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


class GmailSchemaCheck:
    """ASGI middleware for the test sandbox: records how Gmail bodies depart from the schema."""

    def __init__(self, app: ASGIApp, found: list[str]) -> None:
        self.app = app
        self.found = found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or GMAIL_MARK not in scope["path"]:
            await self.app(scope, receive, send)
            return
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []
        status, announced = 0, -1

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            nonlocal status, announced
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                announced = int(headers.get(b"content-length", b"-1"))
            elif message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, reading, sending)
        answer = b"".join(response_chunks)
        if 0 <= len(answer) < announced:
            status = 0  # a cut connection (the drop_after_accept fault): no body to check
        self.found += exchange_problems(
            scope["method"],
            scope["path"],
            b"".join(request_chunks),
            status,
            answer,
        )
