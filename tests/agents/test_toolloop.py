"""The shared tool loop: real SDKs against fake servers, tools in a real Docker sandbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from models.servers import (
    FakeAnthropic,
    FakeOpenAI,
    anthropic_tool,
    openai_text,
    openai_tool,
)

from labcoat.agents.llm.models import ScriptedModel, build_model, text_reply, tool_reply
from labcoat.agents.llm.toolloop import LoopLimits, LoopOutcome, run_tool_loop
from labcoat.sandboxes import DockerProvider, SandboxSpec

KEY = "sk-canary-XYZ-loop"
RUN_CMD = "python3 -c \"print('loss 0.25')\" && echo done"


@pytest.fixture(scope="module")
def run() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(scope="module")
def provider(run: Callable, sandbox_image: str) -> Iterator[tuple[DockerProvider, SandboxSpec]]:
    run_id = f"pytest-loop-{uuid.uuid4().hex[:8]}"
    prov = DockerProvider(run_id)
    run(prov.start())
    spec = SandboxSpec(image=sandbox_image, run_id=run_id, memory_mb=256, cpus=0.5)
    yield prov, spec
    run(prov.cleanup(run_id))
    run(prov.aclose())


def loop_in_sandbox(run: Callable, provider: tuple, srv: Any, spec: str = "openai:gpt-4o",
                    **kw: Any) -> tuple[LoopOutcome, list, dict[str, str]]:
    """Run the loop against `srv` in a fresh sandbox; returns outcome, events, files read back."""
    prov, box_spec = provider
    events: list[tuple[str, dict]] = []

    async def go() -> tuple[LoopOutcome, dict[str, str]]:
        model = build_model(spec, base_url=srv.base_url, api_key=KEY,
                            emit=lambda k, f: events.append((k, dict(f))))
        async with model, await prov.create(box_spec) as box:
            await box.write_file("/workspace/train.py", "lr = 0.1\nepochs = 3\n")
            out = await run_tool_loop(model, system="You are the engineer.", task="Tune lr.",
                                      sandbox=box, emit=lambda k, f: events.append((k, dict(f))),
                                      run_cmd=RUN_CMD, **kw)
            listing = await box.exec("ls /workspace")
            files = {name: (await box.read_file(f"/workspace/{name}")).decode()
                     for name in listing.stdout.split()}
        return out, files

    with srv:
        outcome, files = run(go())
    return outcome, events, files


def tool_results(srv: Any, index: int) -> list[dict]:
    """The tool messages in the `index`-th request the server received (OpenAI shape)."""
    return [m for m in srv.requests[index].json["messages"] if m["role"] == "tool"]


def test_engineer_edits_runs_and_submits_in_a_real_sandbox(run: Callable, provider: tuple) -> None:
    script = [
        openai_tool("edit_file", {"path": "train.py", "old": "lr = 0.5", "new": "lr = 0.01"}),
        openai_tool("edit_file", {"path": "train.py", "old": "lr = 0.1", "new": "lr = 0.01"}),
        openai_tool("write_file", {"path": "notes.md", "content": "lowered lr\n"}),
        openai_tool("bash", {"command": "grep lr train.py && exit 3"}),
        openai_tool("run_experiment", {}),
        openai_tool("submit", {"summary": "lr 0.1 -> 0.01"}),
    ]
    outcome, events, files = loop_in_sandbox(run, provider, srv := FakeOpenAI(script))
    assert outcome.status == "submitted" and outcome.summary == "lr 0.1 -> 0.01"
    assert outcome.turns == 6 and outcome.usage.total_tokens == 90
    assert outcome.cost_usd == pytest.approx(6 * 7.5e-05)
    assert files["train.py"] == "lr = 0.01\nepochs = 3\n" and files["notes.md"] == "lowered lr\n"
    assert "occurs 0 times" in tool_results(srv, 1)[0]["content"]
    assert tool_results(srv, 4)[-1]["content"].startswith("exit code: 3\nstdout:\nlr = 0.01")
    ran = tool_results(srv, 5)[-1]["content"]
    assert "exit code: 0" in ran and "loss 0.25" in ran and "done" in ran
    kinds = [k for k, _ in events]
    assert kinds.count("llm_call") == 6 and kinds.count("tool_call") == 6
    assert KEY not in json.dumps(events)


def test_malformed_json_and_unknown_tools_never_run(run: Callable, provider: tuple) -> None:
    script = [
        openai_tool("write_file", '{"path": "evil.txt", "content": "x"'),  # cut JSON
        openai_tool("rm_rf", {"path": "/"}),
        openai_tool("write_file", {"path": "evil.txt", "body": "wrong field"}),
    ]
    outcome, events, files = loop_in_sandbox(run, provider, srv := FakeOpenAI(script))
    assert outcome.status == "failed" and "3 unusable tool calls in a row" in outcome.reason
    assert "evil.txt" not in files and len(srv.requests) == 3
    assert "not a JSON object" in tool_results(srv, 1)[0]["content"]
    unknown = tool_results(srv, 2)[1]["content"]
    assert "unknown tool 'rm_rf'" in unknown and "bash, read_file" in unknown
    assert "content: Field required" in outcome.reason or "body" in outcome.reason
    assert [f["ok"] for k, f in events if k == "tool_call"] == [False, False, False]


def test_a_good_call_resets_the_bad_streak(run: Callable, provider: tuple) -> None:
    bad = openai_tool("nope", {})
    script = [bad, bad, openai_tool("bash", {"command": "true"}), bad, bad,
              openai_tool("submit", {"summary": "ok"})]
    outcome, _, _ = loop_in_sandbox(run, provider, FakeOpenAI(script))
    assert outcome.status == "submitted"


@pytest.mark.parametrize("shape", ["openai", "anthropic"])
def test_truncated_reply_is_never_executed(run: Callable, provider: tuple, shape: str) -> None:
    args = {"path": "half.txt", "content": "cut"}
    if shape == "openai":
        srv = FakeOpenAI([openai_tool("write_file", args, finish="length"),
                          openai_tool("submit", {"summary": "gave up"})])
    else:
        srv = FakeAnthropic([anthropic_tool("write_file", args, stop="max_tokens"),
                             anthropic_tool("submit", {"summary": "gave up"})])
    spec = "openai:gpt-4o" if shape == "openai" else "anthropic:claude-haiku-4-5"
    outcome, _, files = loop_in_sandbox(run, provider, srv, spec=spec)
    assert outcome.status == "submitted" and "half.txt" not in files
    second = json.dumps(srv.requests[1].json["messages"])
    assert "cut at the output token limit" in second and "nothing in it was executed" in second


def test_turn_limit_stops_the_loop(run: Callable, provider: tuple) -> None:
    srv = FakeOpenAI([openai_tool("bash", {"command": "echo hi"})] * 3)
    outcome, _, _ = loop_in_sandbox(run, provider, srv, limits=LoopLimits(max_turns=2))
    assert outcome.status == "limits" and "turn limit" in outcome.reason
    assert len(srv.requests) == 2


def test_text_only_replies_fail_with_a_clear_reason(run: Callable) -> None:
    model = ScriptedModel(["thinking...", "still thinking", "hmm"])
    outcome = run(run_tool_loop(model, system="s", task="t", sandbox=None))
    assert outcome.status == "failed" and "without a tool call" in outcome.reason
    assert "call `submit`" in model.calls[1].messages[-1].content
    model.assert_complete()


def test_refusal_and_token_limit(run: Callable) -> None:
    refused = ScriptedModel([text_reply("I can't help with that.", stop_reason="refusal")])
    outcome = run(run_tool_loop(refused, system="s", task="t", sandbox=None))
    assert outcome.status == "failed" and "refused" in outcome.reason
    from labcoat.agents.llm.models import Usage

    big = Usage(input_tokens=900, output_tokens=200)
    heavy = ScriptedModel([tool_reply("read_file", {"path": "x"}, usage=big)] * 2)
    outcome = run(run_tool_loop(heavy, system="s", task="t", sandbox=None,
                                limits=LoopLimits(max_tokens=1000)))
    assert outcome.status == "limits" and "token limit" in outcome.reason
    assert outcome.cost_usd is None and len(heavy.calls) == 1  # scripted: unpriced


def test_local_server_reply_without_finish_reason_tool_calls(run: Callable) -> None:
    # Some compatible servers say finish_reason "stop" next to tool calls.
    srv = FakeOpenAI([openai_tool("submit", {"summary": "s"}, finish="stop"), openai_text("x")])

    async def go() -> LoopOutcome:
        async with build_model("openai:qwen2.5-coder", base_url=srv.base_url) as model:
            return await run_tool_loop(model, system="s", task="t", sandbox=None)

    with srv:
        outcome = run(go())
    assert outcome.status == "submitted" and outcome.cost_usd is None
