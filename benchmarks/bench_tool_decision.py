#!/usr/bin/env python
"""How sure is the All Tools adapter when it decides to call a tool? The first token of the first round, on
requests that need a tool and on requests that need none, through the serving path itself.

For each request the script prepares the agent's run exactly as a request to ``glm-4-alltools`` would (the same
tools offered as the evals offer: every built-in, plus the task's user functions), plans its first round on the
catalog's agent adapter (asking for logprobs, as the loop's probe does) and generates up to the first token that is
not whitespace. A round whose first token opens a tool call (``<tool_call>``) is the adapter's decision to call a
tool; the token's probability is how sure it is. The requests: the ``alltools`` suite's tasks (the first turn only:
a later turn, such as a drawing's edit, would need the agent's real reply to the first; train and held-out
families apart; chit-chat families need no tool) and the ``instructions`` suite's plain prompts (seeds 0–2; none
needs a tool).

The summary says, for a few thresholds, how many of each group would still call a tool if a call needed that
much confidence (``agent_tool_confidence`` in the catalog): the trade between tool tasks kept and plain requests
answered without a tool. It also chooses a threshold from the **training families alone** (never the held-out
families or the instructions prompts, which measure the choice): the one (0.00–0.99, lowest on a tie) with the
best balanced accuracy — the mean of the share of train tool tasks that still call and the share of train
chit-chat that calls none.

    .venv/bin/python benchmarks/bench_tool_decision.py --out benchmarks/results
    .venv/bin/python benchmarks/bench_tool_decision.py --rows benchmarks/results/tool_decision.json  # summary again
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THRESHOLDS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
OPENER = "<tool_call>"


def requests_to_measure(seeds: list[int]) -> list[dict[str, Any]]:
    from openglm.evals.alltools.conversation import request_tools
    from openglm.evals.client import AGENT_TOOLS
    from openglm.evals.suites.alltools import AllToolsSuite
    from openglm.evals.suites.instructions import InstructionsSuite

    items = []
    for task in AllToolsSuite().tasks(0):
        group = f"{'chit-chat' if task.data['category'] == 'chat' else 'tool'} ({task.split})"
        tools = request_tools(task.data["functions"])
        items.append(
            {"id": task.id, "family": task.family, "group": group, "text": task.data["turns"][0], "tools": tools}
        )
    for seed in seeds:
        for task in InstructionsSuite().tasks(seed):
            tools = [{"type": kind} for kind in AGENT_TOOLS]
            items.append(
                {
                    "id": f"s{seed}-{task.id}",
                    "family": task.family,
                    "group": "instructions",
                    "text": task.data["prompt"],
                    "tools": tools,
                }
            )
    return items


async def first_token(app: Any, agent: str, item: dict[str, Any]) -> dict[str, Any]:
    from openglm.protocol.chat import ChatCompletionRequest

    state = app.state
    spec = state.models.catalog.agents[agent]
    request = ChatCompletionRequest.model_validate(
        {
            "model": agent,
            "messages": [{"role": "user", "content": item["text"]}],
            "tools": item["tools"],
            "stream": True,
            "temperature": 0,
        }
    )
    loop = state.agents.loop
    run = loop.prepare(spec, request, "bench")
    # The first token that is not whitespace is the one judged (as the loop does): a few tokens are enough.
    probe = loop.round_request(run, first=True).model_copy(
        update={"logprobs": True, "top_logprobs": 5, "max_tokens": 4}
    )
    chat = state.chat
    chat_run = await chat.submit(await chat.plan(probe, run.adapter))
    async for event in chat.events(chat_run):
        for token in event.logprobs:
            if not token.token.strip():
                continue
            chat_run.cancel()
            return {
                "token": token.token,
                "p": math.exp(token.logprob),
                "top": [(top.token, round(math.exp(top.logprob), 4)) for top in token.top],
            }
    raise RuntimeError(f"no token for {item['id']}")


def call_probability(row: dict[str, Any]) -> float | None:
    """The probability of the first token when it opens a tool call, else None (the adapter wrote prose)."""
    token = row["token"].strip()
    return row["p"] if token and OPENER.startswith(token) else None


def calls_at(members: list[dict[str, Any]], threshold: float) -> int:
    return sum(1 for row in members if (p := call_probability(row)) is not None and p >= threshold)


def chosen_threshold(groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    tools, chat = groups["tool (train)"], groups["chit-chat (train)"]

    def balanced(t: float) -> float:
        return (calls_at(tools, t) / len(tools) + 1 - calls_at(chat, t) / len(chat)) / 2

    best = max((round(i / 100, 2) for i in range(100)), key=lambda t: (balanced(t), -t))
    return {"threshold": best, "balanced_accuracy": round(balanced(best), 4), "at_0": round(balanced(0.0), 4)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    chosen = chosen_threshold(groups)
    table: dict[str, Any] = {}
    for group, members in sorted(groups.items()):
        opened = [p for row in members if (p := call_probability(row)) is not None]
        table[group] = {
            "requests": len(members),
            "tool_opened": len(opened),
            "p_median_when_opened": round(statistics.median(opened), 3) if opened else None,
            "calls_at_threshold": {str(t): calls_at(members, t) for t in sorted({*THRESHOLDS, chosen["threshold"]})},
        }
    return {"chosen_on_train": chosen, "groups": table}


async def measure(args: argparse.Namespace) -> None:
    from openglm.api.app import create_app
    from openglm.config import Settings
    from openglm.evals.environment import EvalEnvironment
    from openglm.evals.suites.alltools import AllToolsSuite

    env = EvalEnvironment.start(AllToolsSuite().website(0))
    work = Path(tempfile.mkdtemp(prefix="bench-tool-decision-"))
    catalog = work / "models.toml"
    catalog.write_text(Path(Settings().models_file).read_text() + env.catalog_additions())
    os.environ.update(env.server_env())
    os.environ.update(
        {
            "OPENGLM_DATA_DIR": str(work / "data"),
            "OPENGLM_SECRET_KEY_FILE": str(work / "secret.key"),
            "OPENGLM_MODELS_FILE": str(catalog),
        }
    )
    items = requests_to_measure(args.seeds)
    app = create_app(Settings())
    rows = []
    try:
        async with app.router.lifespan_context(app):
            for item in items:
                rows.append(
                    {**{k: v for k, v in item.items() if k != "tools"}, **await first_token(app, args.agent, item)}
                )
    finally:
        env.stop()
    result = {
        "benchmark": "tool_decision",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join(sys.argv),
        "agent": args.agent,
        "summary": summary(rows),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tool_decision.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result["summary"], indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="glm-4-alltools")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="instructions suite seeds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--rows", help="a tool_decision.json this script wrote: print its summary again")
    args = parser.parse_args()
    if args.rows:
        print(json.dumps(summary(json.loads(Path(args.rows).read_text())["rows"]), indent=1))
        return
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
