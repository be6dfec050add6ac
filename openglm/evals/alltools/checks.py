"""Judging an All Tools task on what the client got: the final answer, the files, the tools used."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from ..client import EvalClient
from ..function_tasks import check_arguments
from ..functions import BY_NAME
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


def has_term(text: str, words: list[str]) -> bool:
    """One of ``words`` as a word of ``text`` ("owl" is not in "bowl")."""
    return any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) for word in words)


def code_output(exchange: Exchange) -> str:
    """What the code the model ran printed, over the turn."""
    return "".join(
        output.get("logs", "")
        for turn in exchange.turns
        for step in turn.steps
        if step.type == "code_interpreter"
        for output in step.outputs
    )


async def judge(expect: Expect, exchanges: list[Exchange], client: EvalClient) -> Verdict:
    verdict = Verdict()
    last = exchanges[-1]
    answer = last.answer
    used = [tool for exchange in exchanges for tool in exchange.tools]
    if expect.tool is None:
        verdict.metrics["no_tool"] = float(not used)
        if used:
            verdict.fail(f"called {used} for a request that needs no tool")
        if not expect.words and (len(answer.split()) < 2 or answer.strip().casefold() in last.user.casefold()):
            verdict.fail(f"no answer of its own: {answer!r}")
    elif expect.tool.startswith("function:"):
        _judge_function(expect, last, verdict)
    elif expect.tool not in last.tools:
        verdict.fail(f"did not use {expect.tool} (used {last.tools or 'nothing'})")
    for number in expect.numbers:
        if not has_number(answer, number):
            verdict.fail(f"answer lacks {number:g}: {answer[:120]!r}")
        elif expect.tool == "code_interpreter" and not has_number(code_output(last), number):
            verdict.fail(f"the code did not print {number:g}: the answer did not come from running it")
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
    mismatch = check_arguments(expect.arguments, calls[0]["arguments"], BY_NAME[name].parameters)
    if mismatch:
        verdict.fail(mismatch)
    for word in expect.result_words:
        number = _as_number(word)
        found = has_number(exchange.answer, number) if number is not None else has_word(exchange.answer, [word])
        if not found:
            verdict.fail(f"answer does not report {word!r} from the result: {exchange.answer[:120]!r}")


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _judge_drawing(expect: Expect, exchange: Exchange, verdict: Verdict) -> None:
    prompts = [step.input for turn in exchange.turns for step in turn.steps if step.type == "drawing_tool"]
    if not prompts:
        return  # already failed: the tool was not used
    for group in expect.prompt_words:
        if not has_term(prompts[-1], group):
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
            cells = [[cell.strip() for cell in row] for row in rows if row]
            header, data = expect.csv_rows[0], expect.csv_rows[1:]
            if cells[1:] != data and cells != data:  # the data rows, under any header or none (none was asked)
                verdict.fail(f"{name} holds {cells[:3]}…, expected rows {data[:2]}… (header {header} optional)")
        return
    verdict.fail(f"no {expect.file_ext} file among the outputs ({len(links)} files)")


async def _file_name(client: EvalClient, link: str) -> str:
    if "/v1/files/" not in link:
        return ""
    file_id = link.split("/v1/files/", 1)[1].split("/", 1)[0]
    info = await client.request("GET", f"/v1/files/{file_id}")
    return str(info.get("filename", ""))
