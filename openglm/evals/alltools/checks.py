"""Judging an All Tools task on what the client got: the final answer, the files, the tools used."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..client import EvalClient
from .conversation import Exchange
from .tasks import Expect

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


@dataclass
class Verdict:
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)


def numbers_in(text: str) -> list[float]:
    """Numbers as written, thousands separators and spaces between digit groups removed."""
    joined = re.sub(r"(?<=\d)[,\u202f ](?=\d{3}\b)", "", text)
    return [float(n) for n in _NUMBER.findall(joined)]


def has_number(text: str, expected: float) -> bool:
    tolerance = max(0.006, abs(expected) * 1e-9)
    return any(abs(n - expected) <= tolerance for n in numbers_in(text))


def has_word(text: str, words: list[str]) -> bool:
    folded = text.casefold()
    return any(word.casefold() in folded for word in words)


def same_value(expected: Any, actual: Any) -> bool:
    """By structure: numbers numerically, strings without case or surrounding space."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(expected == actual)
    if isinstance(expected, int | float):
        try:
            return abs(float(actual) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str):
        return isinstance(actual, str) and actual.strip().casefold() == expected.strip().casefold()
    return bool(expected == actual)


def arguments_match(expected: dict[str, Any], written: str) -> str | None:
    """None when the written arguments hold exactly the expected ones; else what differs."""
    try:
        actual = json.loads(written or "{}")
    except ValueError:
        return f"arguments are not JSON: {written[:80]!r}"
    if not isinstance(actual, dict):
        return "arguments are not an object"
    for key, value in expected.items():
        if key not in actual:
            return f"argument {key!r} missing"
        if not same_value(value, actual[key]):
            return f"argument {key!r} is {actual[key]!r}, expected {value!r}"
    extra = sorted(set(actual) - set(expected))
    return f"unexpected arguments {extra}" if extra else None


async def judge(expect: Expect, exchanges: list[Exchange], client: EvalClient) -> Verdict:
    verdict = Verdict()
    last = exchanges[-1]
    answer = last.answer
    used = [tool for exchange in exchanges for tool in exchange.tools]
    if expect.tool is None:
        verdict.metrics["no_tool"] = float(not used)
        if used:
            verdict.fail(f"called {used} for a request that needs no tool")
        if len(answer.split()) < 2 and not expect.words:
            verdict.fail(f"answer too short: {answer!r}")
    elif expect.tool.startswith("function:"):
        _judge_function(expect, last, verdict)
    elif expect.tool not in last.tools:
        verdict.fail(f"did not use {expect.tool} (used {last.tools or 'nothing'})")
    for number in expect.numbers:
        if not has_number(answer, number):
            verdict.fail(f"answer lacks {number:g}: {answer[:120]!r}")
    for group in expect.words:
        if not has_word(answer, group):
            verdict.fail(f"answer lacks {group[0]!r}: {answer[:120]!r}")
    if expect.cite and not any(url.endswith(expect.cite) for url in _LINK.findall(answer)):
        verdict.fail(f"answer does not cite {expect.cite}")
    if expect.prompt_words:
        _judge_drawing(expect, last, verdict)
    if expect.file_ext:
        await _judge_file(expect, last, client, verdict)
    return verdict


def _judge_function(expect: Expect, exchange: Exchange, verdict: Verdict) -> None:
    name = expect.tool.removeprefix("function:") if expect.tool else ""
    calls = [f for turn in exchange.turns for f in turn.functions]
    verdict.metrics["function_chosen"] = float(bool(calls) and calls[0]["name"] == name)
    if not calls:
        verdict.fail(f"did not call {name} (used {exchange.tools or 'nothing'})")
        return
    if calls[0]["name"] != name:
        verdict.fail(f"called {calls[0]['name']} instead of {name}")
        return
    mismatch = arguments_match(expect.arguments, calls[0]["arguments"])
    if mismatch:
        verdict.fail(mismatch)
    for word in expect.result_words:
        if not has_word(exchange.answer, [word]) and not has_number(exchange.answer, _as_number(word)):
            verdict.fail(f"answer does not report {word!r} from the result: {exchange.answer[:120]!r}")


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _judge_drawing(expect: Expect, exchange: Exchange, verdict: Verdict) -> None:
    prompts = [step.input for turn in exchange.turns for step in turn.steps if step.type == "drawing_tool"]
    if not prompts:
        return  # already failed: the tool was not used
    for group in expect.prompt_words:
        if not has_word(prompts[-1], group):
            verdict.fail(f"the drawing prompt lacks {group[0]!r}: {prompts[-1][:120]!r}")


async def _judge_file(expect: Expect, exchange: Exchange, client: EvalClient, verdict: Verdict) -> None:
    links = [
        output["file"]
        for turn in exchange.turns
        for step in turn.steps
        if step.type == "code_interpreter"
        for output in step.outputs
        if output.get("type") == "file"
    ]
    for link in links:
        name = await _file_name(client, link)
        if not name.endswith(expect.file_ext):
            continue
        if expect.csv_rows:
            rows = list(csv.reader(io.StringIO((await client.download(link)).decode("utf-8", "replace"))))
            if [[cell.strip() for cell in row] for row in rows if row] != expect.csv_rows:
                verdict.fail(f"{name} holds {rows[:3]}…, expected {expect.csv_rows[:3]}…")
        return
    verdict.fail(f"no {expect.file_ext} file among the outputs ({len(links)} files)")


async def _file_name(client: EvalClient, link: str) -> str:
    if "/v1/files/" not in link:
        return ""
    file_id = link.split("/v1/files/", 1)[1].split("/", 1)[0]
    info = await client.request("GET", f"/v1/files/{file_id}")
    return str(info.get("filename", ""))
