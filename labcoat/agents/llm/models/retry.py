"""The one retry layer, and the mapping of provider failures to labcoat errors.

Who retries what (exactly one layer per failure):

* The SDKs (`max_retries`, default 2, plus a request timeout, default 120 s) retry
  connection errors, timeouts, 408/409/429 and 5xx (Anthropic's 529 overloaded included),
  honouring `retry-after` / `retry-after-ms`.
* `no_retry_hook` marks the responses that must never be retried, although their status
  says otherwise, with the SDKs' own `x-should-retry: false`: an exhausted quota
  (`insufficient_quota`, billing) and a context overflow reported by a compatible server.
* tenacity (`transient_retry`) retries only `TransientReplyError`: what the SDKs accept as a
  success but is not one (a 200 carrying `{"error": ...}`, an HTML page, an empty body).
* Never retried: 400/401/403/404/413/422, exhausted quota, context overflow, refusals.

`map_api_error` turns what is left into `ModelAuthError`, `ModelQuotaError`,
`ContextOverflowError`, `ModelUnavailable` or `ModelError`, with a message that names the
provider, the URL and the fix, and never contains the API key, nor any run of 12+ of its
characters in any case (`redact`, the same function the log writer uses).
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from labcoat.errors import (
    ContextOverflowError,
    ModelAuthError,
    ModelError,
    ModelQuotaError,
    ModelUnavailable,
)
from labcoat.text import redact as redact  # the one redaction, shared with the log writer

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 2
DEFAULT_TIMEOUT_S = 120.0

_QUOTA = re.compile(
    r"insufficient_quota|billing|credit balance|quota exceeded|exceeded your current quota", re.I
)
_OVERFLOW = re.compile(
    r"context_length_exceeded|maximum context length|context length|context window|"
    r"exceed_context_size|exceeds the available context|prompt is too long|too many tokens",
    re.I,
)


class TransientReplyError(Exception):
    """A reply the SDK accepted but that is not a usable answer; retried by tenacity only."""


def is_quota_exhausted(text: str) -> bool:
    return bool(_QUOTA.search(text))


def is_context_overflow(text: str) -> bool:
    return bool(_OVERFLOW.search(text))


async def no_retry_hook(response: httpx.Response) -> None:
    """httpx response hook: tell the SDK not to retry an exhausted quota or a context overflow."""
    if response.status_code < 400:
        return
    await response.aread()
    text = response.text[:20_000]
    if is_quota_exhausted(text) or is_context_overflow(text):
        response.headers["x-should-retry"] = "false"


def summarize_body(body: object, limit: int = 300) -> str:
    """A short readable form of an error body: JSON message, or an HTML page's text."""
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        text = str(msg if msg else body)
    else:
        text = html.unescape(re.sub(r"<[^>]+>", " ", str(body or "")))
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def map_status(status: int, body: object, where: str) -> ModelError:
    """The labcoat error for an HTTP error status the SDK gave up on (or never retried)."""
    detail = summarize_body(body)
    text = f"{body}"
    if status in (401, 403):
        return ModelAuthError(f"{where} rejected the API key (HTTP {status}): {detail}. "
                              "Check the key in the environment and its access to this model.")
    if status == 402 or is_quota_exhausted(text):
        return ModelQuotaError(f"{where}: quota or credit exhausted (HTTP {status}): {detail}. "
                               "Add credit or raise the limit, then `labcoat resume` the run.")
    if is_context_overflow(text) or status == 413:
        return ContextOverflowError(f"{where}: the prompt no longer fits the model's context "
                                    f"(HTTP {status}): {detail}")
    if status in (408, 409, 429) or status >= 500:
        return ModelUnavailable(f"{where}: HTTP {status} after all retries: {detail}. "
                                "The provider is overloaded or rate-limiting; resume later.")
    return ModelError(f"{where} refused the request (HTTP {status}): {detail}")


def map_api_error(exc: BaseException, where: str) -> ModelError | TransientReplyError | None:
    """Map an SDK exception (either SDK: matched by class name) to a labcoat error."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and "APIStatusError" in names:
        return map_status(status, getattr(exc, "body", None), where)
    if "APITimeoutError" in names:
        return ModelUnavailable(f"{where}: no answer within the request timeout, after all "
                                "retries. Check the server, or raise the timeout.")
    if "APIConnectionError" in names:
        return ModelUnavailable(f"{where}: cannot connect, after all retries ({exc.__cause__!r}). "
                                "Check the base URL and that the server is up.")
    if "APIResponseValidationError" in names:
        body = summarize_body(getattr(exc, "body", ""))
        return TransientReplyError(f"{where}: malformed response: {body}")
    return None


async def transient_retry(
    call: Callable[[], Awaitable[T]], *, attempts: int, wait_s: float = 1.0
) -> T:
    """Run `call`, retrying `TransientReplyError` only; then raise `ModelUnavailable`."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientReplyError),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=wait_s, max=max(wait_s, 8 * wait_s)),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except TransientReplyError as err:
        raise ModelUnavailable(f"{err} (gave up after {attempts} attempts)") from None
    raise AssertionError("unreachable")  # pragma: no cover


def sdk_client(client_cls: Callable[..., T], http_cls: Callable[..., Any], api_key: str,
               base_url: str | None, *, max_retries: int, timeout_s: float) -> T:
    """An SDK client (`AsyncAnthropic`, `AsyncOpenAI`) with labcoat's retry budget, request
    timeout and `no_retry_hook`: the SDK's retries are the one retry layer for HTTP failures."""
    http = http_cls(event_hooks={"response": [no_retry_hook]})
    return client_cls(api_key=api_key, base_url=base_url, max_retries=max_retries,
                      timeout=timeout_s, http_client=http)


def mapped_error(err: BaseException, where: str, api_key: str) -> Exception:
    """An SDK failure as the labcoat error to raise, with the API key redacted from it."""
    mapped = map_api_error(err, where) or ModelError(f"{where}: {err}")
    return type(mapped)(redact(str(mapped), [api_key]))
