"""The fault matrix: every provider failure ends in its documented behaviour, no traceback.

Real SDK clients, real HTTP to servers on 127.0.0.1. The request count proves there is exactly
one retry layer: `1 + max_retries` for what the SDK retries, 1 for what must not be retried.
"""

from __future__ import annotations

import time

import pytest

from labcoat.errors import (
    ContextOverflowError,
    ModelAuthError,
    ModelError,
    ModelQuotaError,
    ModelUnavailable,
)

from .conftest import CANARY, SHAPES, ask, model_for, server_for
from .servers import (
    FakeServer,
    anthropic_error,
    anthropic_text,
    hang,
    html,
    openai_error,
    openai_text,
    reset,
)

FAST = {"retry-after-ms": "10"}
NOW = {"retry-after-ms": "10", "retry-after": "0"}


def ok(shape: str, text: str = "fine") -> dict:
    return openai_text(text) if shape == "openai" else anthropic_text(text)


def error(shape: str, status: int, message: str, kind: str = "api_error", **kw) -> object:
    if shape == "openai":
        return openai_error(status, message, type=kind, **kw)
    return anthropic_error(status, message, type=kind, **kw)


def fails(
    shape: str, script: list, exc: type[Exception], match: str | None = None, **kw: object
) -> tuple[FakeServer, pytest.ExceptionInfo[Exception]]:
    """One call that must raise `exc`; returns the (stopped) server and the error."""
    with server_for(shape, script) as srv, pytest.raises(exc, match=match) as info:
        ask(model_for(shape, srv, **kw))
    return srv, info


def events_sink() -> tuple[list[tuple[str, dict]], object]:
    events: list[tuple[str, dict]] = []
    return events, lambda kind, fields: events.append((kind, dict(fields)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.slow
def test_429_with_retry_after_is_retried_then_succeeds(shape: str) -> None:
    limited = error(shape, 429, "slow down", "rate_limit_error", headers=NOW)
    with server_for(shape, [limited, ok(shape)]) as srv:
        reply = ask(model_for(shape, srv))
    assert reply.message.content == "fine"
    assert len(srv.requests) == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_500_storm_spends_exactly_one_retry_budget(shape: str) -> None:
    storm = [error(shape, 500, "internal", headers=FAST)] * 10
    events, emit = events_sink()
    with server_for(shape, storm) as srv:
        model = model_for(shape, srv, max_retries=2, emit=emit)
        with pytest.raises(ModelUnavailable, match="HTTP 500 after all retries"):
            ask(model)
    assert len(srv.requests) == 3  # 1 + max_retries: SDK retries only, tenacity stays out
    assert [kind for kind, _ in events] == ["llm_error"]
    assert events[0][1]["error"] == "ModelUnavailable"


def test_529_overloaded_is_retried_then_gives_up_with_one_message() -> None:
    overloaded = anthropic_error(529, "Overloaded", type="overloaded_error", headers=FAST)
    with server_for("anthropic", [overloaded, anthropic_text("back")]) as srv:
        assert ask(model_for("anthropic", srv)).message.content == "back"
    srv, _ = fails(
        "anthropic", [overloaded] * 5, ModelUnavailable, r"529.*Overloaded", max_retries=1
    )
    assert len(srv.requests) == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_connection_reset_is_retried(shape: str) -> None:
    with server_for(shape, [reset(), ok(shape)]) as srv:
        assert ask(model_for(shape, srv)).message.content == "fine"
    assert len(srv.requests) == 2
    srv, _ = fails(shape, [reset()] * 5, ModelUnavailable, "cannot connect", max_retries=1)
    assert len(srv.requests) == 2


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.slow
def test_server_that_never_answers_times_out(shape: str) -> None:
    with server_for(shape, [hang(), hang(), ok(shape)]) as srv:
        started = time.monotonic()
        with pytest.raises(ModelUnavailable, match="timeout"):
            ask(model_for(shape, srv, max_retries=1, timeout_s=0.5))
        assert time.monotonic() - started < 5
    assert len(srv.requests) == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_html_502_page_is_retried_and_reported_readably(shape: str) -> None:
    page = html(502, "Bad Gateway", headers=FAST)
    with server_for(shape, [page, ok(shape)]) as srv:
        assert ask(model_for(shape, srv)).message.content == "fine"
    with server_for(shape, [page] * 5) as srv, pytest.raises(ModelUnavailable) as info:
        ask(model_for(shape, srv))
    assert len(srv.requests) == 3
    assert "Bad Gateway" in str(info.value) and "<html>" not in str(info.value)


@pytest.mark.parametrize("shape", SHAPES)
def test_200_with_error_body_is_retried_by_tenacity_only(shape: str) -> None:
    bad = {"error": {"message": "upstream hiccup", "type": "server_error"}}
    if shape == "anthropic":
        bad = {"type": "error", **bad}
    with server_for(shape, [bad, ok(shape)]) as srv:
        assert ask(model_for(shape, srv)).message.content == "fine"
    assert len(srv.requests) == 2
    srv, _ = fails(shape, [bad] * 5, ModelUnavailable, "upstream hiccup", max_retries=1)
    assert len(srv.requests) == 2


def test_html_page_with_status_200_is_retried() -> None:
    with server_for("openai", [html(200, "Welcome to nginx"), ok("openai")]) as srv:
        assert ask(model_for("openai", srv)).message.content == "fine"
    assert len(srv.requests) == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_context_overflow_is_not_retried(shape: str) -> None:
    message = {
        "openai": "This model's maximum context length is 128000 tokens. However, you requested "
        "130000 tokens.",
        "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
    }[shape]
    srv, _ = fails(
        shape, [error(shape, 400, message, "invalid_request_error")] * 3,
        ContextOverflowError, "no longer fits",
    )
    assert len(srv.requests) == 1


def test_context_overflow_reported_as_500_by_a_local_server_is_not_retried() -> None:
    overflow = openai_error(500, "the request exceeds the available context size (4096 tokens)",
                            type="exceed_context_size_error")
    with server_for("openai", [overflow] * 3) as srv, pytest.raises(ContextOverflowError):
        ask(model_for("openai", srv))
    assert len(srv.requests) == 1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_stops_after_one_request_without_the_key(shape: str, status: int) -> None:
    echoed = f"Incorrect API key provided: {CANARY}."
    events, emit = events_sink()
    srv, info = fails(
        shape, [error(shape, status, echoed, "authentication_error")] * 3, ModelAuthError, emit=emit
    )
    assert len(srv.requests) == 1
    assert CANARY not in str(info.value) and "rejected the API key" in str(info.value)
    assert CANARY not in repr(events) and events[0][1]["error"] == "ModelAuthError"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("echo", [str.upper, lambda k: k[:-1], lambda k: k[2:16].lower()],
                         ids=["upper", "last-cut", "fragment"])
def test_a_key_echoed_in_another_shape_is_redacted_too(shape: str, echo: object) -> None:
    echoed = f"Incorrect API key provided: {echo(CANARY)}."  # type: ignore[operator]
    events, emit = events_sink()
    _, info = fails(shape, [error(shape, 401, echoed, "authentication_error")], ModelAuthError,
                    emit=emit)
    shown = (str(info.value) + repr(events)).lower()
    assert "[redacted]" in shown
    assert not any(CANARY.lower()[i:i + 12] in shown for i in range(len(CANARY) - 11)), shown


@pytest.mark.parametrize("shape", SHAPES)
def test_exhausted_quota_429_is_not_retried(shape: str) -> None:
    message = "You exceeded your current quota, please check your plan and billing details."
    quota = error(shape, 429, message, "insufficient_quota", headers=NOW)
    srv, _ = fails(shape, [quota] * 3, ModelQuotaError, "labcoat resume")
    assert len(srv.requests) == 1


def test_anthropic_low_credit_is_a_quota_error() -> None:
    credit = anthropic_error(400, "Your credit balance is too low to access the Anthropic API.")
    with server_for("anthropic", [credit] * 3) as srv, pytest.raises(ModelQuotaError):
        ask(model_for("anthropic", srv))
    assert len(srv.requests) == 1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_never_retried(shape: str, status: int) -> None:
    srv, _ = fails(
        shape, [error(shape, status, "bad field 'x'")] * 3,
        ModelError, rf"refused the request \(HTTP {status}\)",
    )
    assert len(srv.requests) == 1
