"""ManagedModel through the real SDKs: cost, budget, replay, events, key hygiene; the factory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labcoat.agents.llm.models import (
    Budget,
    ManagedModel,
    Message,
    ScriptedModel,
    ToolSpec,
    build_model,
    parse_role_models,
    price_for,
    text_reply,
    tool_reply,
)
from labcoat.errors import BudgetExhausted, ConfigError, ModelAuthError

from .conftest import CANARY, SHAPES, SPECS, ask, ask_async, model_for, run, server_for
from .servers import (
    anthropic_error,
    anthropic_text,
    anthropic_tool,
    openai_error,
    openai_text,
    openai_tool,
)

BASH = ToolSpec(name="bash", description="run a command",
                parameters={"type": "object", "properties": {"command": {"type": "string"}}})


@pytest.mark.slow
def test_known_models_are_priced_with_cached_tokens_on_their_own() -> None:
    big = openai_text("x", usage=(1_000_000, 1_000_000), cached=400_000)
    with server_for("openai", [big]) as srv:
        reply = ask(model_for("openai", srv, spec="openai:gpt-4o-2024-08-06"))
    # 600k plain input at $2.50/M + 400k cached at $1.25/M + 1M output at $10/M
    assert reply.usage.input_tokens == 600_000 and reply.usage.cache_read_tokens == 400_000
    assert reply.cost_usd == pytest.approx(1.5 + 0.5 + 10.0)
    body = anthropic_text("x", usage=(1_000_000, 1_000_000), cache=(2_000_000, 1_000_000))
    with server_for("anthropic", [body]) as srv:
        reply = ask(model_for("anthropic", srv))
    # haiku 4.5: $1 input, $5 output, $0.10 cache read, $1.25 cache write, per million
    assert reply.cost_usd == pytest.approx(1.0 + 5.0 + 0.2 + 1.25)


@pytest.mark.parametrize("shape", SHAPES)
def test_unknown_model_has_unknown_cost_never_zero(shape: str) -> None:
    events: list[tuple[str, dict]] = []
    budget = Budget(max_usd=0.01)
    script = [openai_text("x") if shape == "openai" else anthropic_text("x")]
    with server_for(shape, script) as srv:
        model = model_for(shape, srv, spec=f"{shape}:my-local-llama", budget=budget,
                          emit=lambda k, f: events.append((k, dict(f))))
        reply = ask(model)
    assert reply.cost_usd is None and events[0][1]["cost_usd"] is None
    assert budget.unpriced_calls == 1 and budget.spent_usd == 0 and budget.spent_tokens == 15
    assert price_for("openai", "llama3.1:8b") is None


@pytest.mark.parametrize("shape", SHAPES)
def test_budget_refuses_a_call_before_it_starts(shape: str) -> None:
    with server_for(shape, []) as srv:
        model = model_for(shape, srv, budget=Budget(max_tokens=1000))
        with pytest.raises(BudgetExhausted, match="--budget-tokens"):
            ask(model)  # default max_tokens 4096 alone passes the limit
        spent = Budget(max_usd=1.0, spent_usd=0.999)
        with pytest.raises(BudgetExhausted, match="--budget-usd"):
            ask(model_for(shape, srv, budget=spent))
    assert srv.requests == []


def test_budget_counts_every_call_and_stops_when_spent() -> None:
    budget = Budget(max_tokens=15_000)
    with server_for("openai", [openai_text("a", usage=(9000, 2000))] * 3) as srv:
        model = model_for("openai", srv, budget=budget)

        async def go() -> None:
            async with model:
                await ask_async(model)
                with pytest.raises(BudgetExhausted):
                    await ask_async(model)

        run(go())
    assert budget.spent_tokens == 11_000 and len(srv.requests) == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_replay_answers_from_the_log_until_the_first_divergence(shape: str) -> None:
    tool = openai_tool if shape == "openai" else anthropic_tool
    text = openai_text if shape == "openai" else anthropic_text
    events: list[tuple[str, dict]] = []

    async def conversation(model: ManagedModel, last: str) -> list[str]:
        msgs = [Message.system("sys"), Message.user("list files")]
        first = await model.complete(msgs, tools=[BASH])
        call = first.message.tool_calls[0]
        msgs += [first.message, Message.tool(call.id, "a.py")]
        second = await model.complete(msgs, tools=[BASH])
        third = await model.complete([*msgs, second.message, Message.user(last)], tools=[BASH])
        await model.aclose()
        return [first.message.tool_calls[0].name, second.message.content, third.message.content]

    script = [tool("bash", {"command": "ls"}), text("one file"), text("bye")]
    with server_for(shape, script) as srv:
        emit = lambda k, f: events.append((k, dict(f)))  # noqa: E731
        first = run(conversation(model_for(shape, srv, emit=emit), "thanks"))
    assert len(srv.requests) == 3 and [k for k, _ in events] == ["llm_call"] * 3
    logged: dict[str, list[dict[str, object]]] = {}
    for _, fields in events:  # the index `wiring.replay_of` builds from logged events
        reply = json.loads(json.dumps(fields["reply"]))
        logged.setdefault(fields["request_hash"], []).append(reply)
    with server_for(shape, [text("new answer")]) as srv:
        again = model_for(shape, srv, replay=logged)
        second = run(conversation(again, "something else"))
    assert second == [*first[:2], "new answer"]
    assert len(srv.requests) == 1 and again.replayed == 2  # only the diverged call was bought


def test_canary_key_never_in_events_or_requests_bodies() -> None:
    events: list[tuple[str, dict]] = []
    echo = openai_text(f"my key is {CANARY}")
    with server_for("openai", [echo]) as srv:
        ask(model_for("openai", srv, emit=lambda k, f: events.append((k, dict(f)))))
    assert CANARY not in json.dumps(events)
    assert srv.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # sent, only there
    assert CANARY not in srv.requests[0].body.decode()


def test_anthropic_caches_the_stable_prefix() -> None:
    with server_for("anthropic", [anthropic_text("ok")]) as srv:
        ask(model_for("anthropic", srv), tools=[BASH, ToolSpec(name="submit", description="end")])
    body = srv.requests[0].json
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}


def test_scripted_model_records_calls_and_checks_completion() -> None:
    model = ScriptedModel([tool_reply("bash", {"command": "ls"}), "done", text_reply("extra")])
    managed = ManagedModel(model)
    first = run(managed.complete([Message.user("go")], tools=[BASH]))
    assert first.message.tool_calls[0].arguments == {"command": "ls"}
    assert run(managed.complete([Message.user("go on")])).message.content == "done"
    assert model.calls[1].messages[0].content == "go on" and model.calls[0].tools == (BASH,)
    with pytest.raises(AssertionError, match="1 scripted replies never requested"):
        model.assert_complete()
    run(model.complete([Message.user("last")]))
    model.assert_complete()
    with pytest.raises(AssertionError, match="no scripted reply"):
        run(model.complete([Message.user("one too many")]))


def test_factory_specs_keys_and_role_models(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="anthropic:MODEL"):
        build_model("gpt-4o")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        build_model("anthropic:claude-haiku-4-5")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    model = build_model("openai:gpt-4.1", base_url="http://127.0.0.1:9/v1")
    assert model.name == "gpt-4.1" and model.price == price_for("openai", "gpt-4.1")
    assert parse_role_models(["critic=openai:gpt-4.1", "engineer = anthropic:x"]) == {
        "critic": "openai:gpt-4.1", "engineer": "anthropic:x"}
    with pytest.raises(ConfigError, match="ROLE=SPEC"):
        parse_role_models(["critic"])


@pytest.mark.parametrize("shape", SHAPES)
def test_a_key_from_the_environment_is_sent_and_redacted_from_events(
        shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory reads the key from the environment and hands that same key to the redaction:
    a provider echoing it (in a reply, in an error) never puts it into an event or a message."""
    monkeypatch.setenv("OPENAI_API_KEY" if shape == "openai" else "ANTHROPIC_API_KEY", CANARY)
    text, error = (openai_text, openai_error) if shape == "openai" else (anthropic_text,
                                                                         anthropic_error)
    events: list[tuple[str, dict]] = []
    script = [text(f"my key is {CANARY}"),
              error(401, f"Incorrect API key provided: {CANARY}.", type="authentication_error")]
    with server_for(shape, script) as srv:
        model = build_model(SPECS[shape], base_url=srv.base_url, reply_retry_wait_s=0.0,
                            emit=lambda kind, fields: events.append((kind, dict(fields))))

        async def twice() -> None:
            await ask_async(model)
            await ask_async(model, close=True)

        with pytest.raises(ModelAuthError) as err:
            run(twice())
    sent = {k.lower(): v for k, v in srv.requests[0].headers.items()}
    assert sent.get("authorization") == f"Bearer {CANARY}" or sent.get("x-api-key") == CANARY
    assert [kind for kind, _ in events] == ["llm_call", "llm_error"]
    assert "my key is" in json.dumps(events[0][1]["reply"])
    assert CANARY not in json.dumps(events) and CANARY not in str(err.value)


def test_local_server_needs_no_key_and_gets_max_tokens() -> None:
    with server_for("openai", [openai_text("hi")]) as srv:
        reply = ask(build_model("ollama" and "openai:llama3.1:8b", base_url=srv.base_url))
    assert reply.cost_usd is None and srv.requests[0].json["max_tokens"] == 4096


def test_importing_the_package_does_not_import_the_sdks() -> None:
    code = ("import sys, labcoat.agents.llm.models, labcoat.agents.llm.toolloop; "
            "print(sorted(m for m in ('anthropic', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
