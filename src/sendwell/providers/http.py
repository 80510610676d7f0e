"""HTTP calls to mail hosts, with transport failures classified once."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sendwell.kit.logging import get_logger
from sendwell.metrics.process import PROVIDER_ERRORS, PROVIDER_REQUEST_SECONDS, provider_label
from sendwell.providers.errors import OutcomeUnknown, Transient

log = get_logger(__name__)


def call(
    http: httpx.Client, method: str, url: str, *, provider: str, idempotent: bool, **kwargs: Any
) -> httpx.Response:
    """One request; a failure before the request left is Transient, after it maybe not.

    For a non-idempotent call (sending mail) a timeout or cut connection after the request
    was written means the host may have acted on it: that is ``OutcomeUnknown``.
    """
    started = time.perf_counter()
    label = provider_label(provider)
    try:
        response = http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        PROVIDER_ERRORS.labels(label, "connect").inc()
        raise Transient(
            f"Could not reach {provider}: {type(error).__name__}.", code="connect"
        ) from error
    except httpx.TransportError as error:
        if idempotent:
            PROVIDER_ERRORS.labels(label, "transport").inc()
            raise Transient(
                f"{provider} did not answer: {type(error).__name__}.", code="transport"
            ) from error
        PROVIDER_ERRORS.labels(label, "no_answer").inc()
        raise OutcomeUnknown(
            f"The request reached {provider} but no answer came back ({type(error).__name__}).",
            code="no_answer",
        ) from error
    finally:
        elapsed = time.perf_counter() - started
        PROVIDER_REQUEST_SECONDS.labels(label).observe(elapsed)
        log.debug(
            "provider_call",
            provider=provider,
            method=method,
            duration_ms=round(elapsed * 1000, 1),
        )
    if response.status_code >= 400:
        PROVIDER_ERRORS.labels(label, f"http_{response.status_code}").inc()
    return response


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header as seconds, in either of its two forms.

    Microsoft Graph sends fractional seconds ("2.128", its throttling guide's own example),
    which RFC 9110 does not allow but a client must still honour.
    """
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or an empty dict when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
