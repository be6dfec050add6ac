"""``alltools``: everyday requests to an All Tools agent, with real tool execution (the sandboxed kernel, the
browser over the eval's local website, the stand-in image model, user functions run by the eval), judged on the
final answer, the files and the tools used."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from ..alltools.checks import judge
from ..alltools.conversation import Exchange, drive
from ..alltools.tasks import Expect, families
from ..alltools.world import World
from ..base import Outcome, Suite, Task, default_summary, eval_suites, mean, median
from ..client import EvalClient
from ..environment import EvalEnvironment

TASKS_PER_FAMILY = 8
CALL_TEXT_KEPT = 600  # characters of a call's input or output the transcript keeps: enough to see why it failed


def eval_world(seed: int) -> World:
    """The eval's world: named apart from training worlds (``World(1000 + seed)``), whatever the seeds."""
    return World(f"eval-{seed}")


def _cut(text: str) -> str:
    return text if len(text) <= CALL_TEXT_KEPT else text[:CALL_TEXT_KEPT] + "…"


def _calls(exchange: Exchange) -> list[dict[str, Any]]:
    """What the model called in this turn, in order — the code it ran, the page it opened, the drawing prompt, the
    function and its arguments — with what each returned, so a failed task's report shows where it went wrong."""
    calls: list[dict[str, Any]] = []
    for turn in exchange.turns:
        for step in turn.steps:
            outputs = [
                _cut(str(output.get("logs") or output.get("url") or output.get("file") or output))
                for output in step.outputs
            ]
            calls.append({"tool": step.type, "input": _cut(step.input), "outputs": outputs})
        calls.extend(
            {"tool": f"function:{function['name']}", "input": _cut(function["arguments"])}
            for function in turn.functions
        )
    return calls


@eval_suites.register("alltools")
class AllToolsSuite(Suite):
    name = "alltools"
    description = (
        "Task success of an All Tools agent with real tools: code (arithmetic, statistics, dates, counting), files "
        "(CSV, charts), the browser over a local website (one page, two hops, citations), drawing and editing, "
        "choosing among five user functions, and plain requests that need no tool."
    )
    needs = ("alltools", "browser", "images")

    def tasks(self, seed: int = 0) -> list[Task]:
        world = eval_world(seed)
        tasks = []
        for name, family in families.items():
            rng = random.Random(f"alltools-eval-{seed}-{name}")
            seen: set[str] = set()
            for _ in range(TASKS_PER_FAMILY * 20):  # families with few distinct requests stop short
                if len(seen) == TASKS_PER_FAMILY:
                    break
                instance = family.make(rng, world)
                key = "\n".join(instance.turns)
                if key in seen:
                    continue
                seen.add(key)
                data = {**instance.task_data(), "category": family.category}
                tasks.append(Task(f"{name}-{len(seen)}", name, family.split, data))
        return tasks

    def website(self, seed: int) -> dict[str, str]:
        return eval_world(seed).pages()

    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        data = task.data
        expect = Expect(**{f.name: data["expect"][f.name] for f in fields(Expect)})
        exchanges = await drive(client, model, data["turns"], data["functions"])
        verdict = await judge(expect, exchanges, client)
        latency = sum(turn.latency_s for exchange in exchanges for turn in exchange.turns)
        return Outcome(
            task.id,
            task.family,
            task.split,
            verdict.passed,
            float(verdict.passed),
            latency_s=latency,
            tools=[tool for exchange in exchanges for tool in exchange.tools],
            detail="; ".join(verdict.reasons),
            metrics=verdict.metrics,
            transcript=[
                {
                    "user": e.user,
                    "calls": _calls(e),
                    "answer": e.answer,
                    "tools": e.tools,
                    "function_results": e.function_results,
                }
                for e in exchanges
            ],
        )

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        summary = default_summary(outcomes)
        categories: dict[str, list[float]] = {}
        for outcome in outcomes:
            categories.setdefault(families[outcome.family].category, []).append(outcome.score)
        chosen = [o.metrics["function_chosen"] for o in outcomes if "function_chosen" in o.metrics]
        no_tool = [o.metrics["no_tool"] for o in outcomes if "no_tool" in o.metrics]
        one_tool = [o.latency_s for o in outcomes if families[o.family].category == "code" and o.passed]
        summary["categories"] = {name: mean(scores) for name, scores in sorted(categories.items())}
        summary["metrics"] = {
            "function_choice": mean(chosen),
            "no_tool_for_chat": mean(no_tool),
            "one_tool_turn_p50_s": median(one_tool),
        }
        return summary
