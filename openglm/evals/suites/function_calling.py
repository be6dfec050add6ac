"""``function-calling``: does the model call the user's functions right, over plain ``/v1/chat/completions``
with ``tools``? Checked by structure (``function_tasks.check_calls``), never by comparing strings.

Categories: ``simple`` (one function offered, the request needs it), ``multiple`` (five offered, one fits),
``parallel`` (two independent requests in one message: two calls, in any order) and ``irrelevance`` (functions
offered, none fits: the model must answer without a call). A family is a category in one wording group
(``simple-question``, ``parallel-situational``…); it takes the group's split. A training family only offers and
calls training functions; a held-out family calls only held-out functions, in held-out wordings (its
distractors may be any function), so its score measures what tuning on the training families did not show.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..base import Outcome, Suite, Task, default_summary, eval_suites, mean
from ..client import EvalClient
from ..environment import EvalEnvironment
from ..function_tasks import (
    WORDING_SPLITS,
    Call,
    FunctionTask,
    check_calls,
    function_task,
    functions_of,
    irrelevant_task,
    parallel_task,
)
from ..functions import FUNCTIONS, UserFunction

CATEGORIES = ("simple", "multiple", "parallel", "irrelevance")
TASKS_PER_FAMILY = 10
OFFERED_IN_MULTIPLE = 5
MAX_TOKENS = 256  # two calls with their arguments fit; a model that rambles instead is cut off, and fails


def family_name(category: str, wording: str) -> str:
    return f"{category}-{wording}"


def _family_tasks(category: str, wording: str, seed: int) -> list[tuple[FunctionTask, list[UserFunction]]]:
    """The family's tasks, each with the functions offered (in the order the model sees them)."""
    split = WORDING_SPLITS[wording]
    rng = random.Random(f"function-calling:{seed}:{category}:{wording}")
    callable_ = functions_of(split)
    rng.shuffle(callable_)
    # What may be offered besides: a training family never shows a held-out function at all.
    offerable = functions_of("train") if split == "train" else list(FUNCTIONS)
    made: list[tuple[FunctionTask, list[UserFunction]]] = []
    for i in range(TASKS_PER_FAMILY):
        target = callable_[i % len(callable_)]
        others = [f for f in offerable if f is not target]
        if category == "simple":
            made.append((function_task(rng, target, wording), [target]))
        elif category == "multiple":
            offered = [target, *rng.sample(others, OFFERED_IN_MULTIPLE - 1)]
            rng.shuffle(offered)
            made.append((function_task(rng, target, wording), offered))
        elif category == "parallel":
            second = rng.choice([f for f in callable_ if f is not target])
            offered = [target, second, rng.choice([f for f in others if f is not second])]
            rng.shuffle(offered)
            made.append((parallel_task(rng, target, second, wording), offered))
        else:
            made.append((irrelevant_task(rng, wording), rng.sample(offerable, 3)))
    return made


@eval_suites.register("function-calling")
class FunctionCallingSuite(Suite):
    name = "function-calling"
    description = (
        "User functions over /v1/chat/completions: one offered (simple), one of five (multiple), two requests in "
        "one message (parallel), none fitting (irrelevance); calls checked by structure."
    )
    needs = ("chat",)

    def tasks(self, seed: int = 0) -> list[Task]:
        tasks = []
        for category in CATEGORIES:
            for wording, split in WORDING_SPLITS.items():
                family = family_name(category, wording)
                for i, (made, offered) in enumerate(_family_tasks(category, wording, seed)):
                    data = {
                        "category": category,
                        "wording": wording,
                        "request": made.request,
                        "tools": [function.definition() for function in offered],
                        "expected": [call.to_json() for call in made.calls],
                    }
                    tasks.append(Task(f"{family}-{i:02d}", family, split, data))
        return tasks

    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        data = task.data
        messages: list[dict[str, Any]] = [{"role": "user", "content": data["request"]}]
        reply = await client.chat(
            model, messages, tools=data["tools"], tool_choice="auto", temperature=0, max_tokens=MAX_TOKENS
        )
        expected = [Call(call["name"], call["arguments"]) for call in data["expected"]]
        schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in data["tools"]}
        problem = check_calls(expected, reply.tool_calls, schemas)
        made = ", ".join(f"{name}({arguments})" for name, arguments in reply.tool_calls)
        detail = problem or (f"called {made}" if made else "answered without a call")
        answer: dict[str, Any] = {"role": "assistant", "content": reply.content}
        answer["tool_calls"] = [{"name": name, "arguments": arguments} for name, arguments in reply.tool_calls]
        return Outcome(
            task.id,
            task.family,
            task.split,
            problem is None,
            1.0 if problem is None else 0.0,
            latency_s=reply.latency_s,
            tools=[f"function:{name}" for name, _ in reply.tool_calls],
            detail=detail,
            transcript=[*messages, answer],
        )

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """The default summary, plus the score of each category over its wordings (in ``metrics``)."""
        summary = default_summary(outcomes)
        by_category: dict[str, list[float]] = {}
        for outcome in outcomes:
            by_category.setdefault(outcome.family.split("-", 1)[0], []).append(outcome.score)
        summary["metrics"] = {name: mean(by_category[name]) for name in CATEGORIES if name in by_category}
        return summary
