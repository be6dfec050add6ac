"""The web browser tool through the real server: a two-hop question answered from a fixture website on
127.0.0.1 (allow-listed) through the local index provider, with citations turned into links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..fixtures.website import Website
from .conftest import write_catalog
from .server import RunningServer
from .test_alltools import call, stream, user


def browse(command: str) -> str:
    return call("simple_browser", {"command": command})


GROWTH_CODE = "print('growth=' + str(round(((8.0 / 6.1) ** (1 / 23) - 1) * 100, 2)))"
MULTI_ANSWER = "From 6.1 to 8.0 billion 【0†World population 2000-2023】: about 1.19% a year."


ANSWER = "It grew about 1.2% a year 【1†Population growth】, from 6.1 billion 【0†World population 2000-2023】."


def catalog(site: Website) -> str:
    return f"""
[[models]]
id = "script-browse"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "1.2 percent"
reply = {json.dumps(ANSWER)}
[[models.options.script]]
when = "/growth.html"
reply = {browse(f'open_url("{site.url}/growth.html")')}
[[models.options.script]]
when = "【0†World population"
reply = {browse("mclick([0])")}
[[models.options.script]]
when = ""
reply = {browse('search("6.1 billion")')}

[[models]]
id = "script-multi"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "growth="
reply = {json.dumps(MULTI_ANSWER)}
[[models.options.script]]
when = "【0†World population"
reply = {call("python", {"code": GROWTH_CODE})}
[[models.options.script]]
when = ""
reply = {browse('search("6.1 billion")')}

[[agents]]
id = "glm-4-alltools"
model = "script-browse"

[[agents]]
id = "multi-tool"
model = "script-multi"
"""


@pytest.fixture(scope="module")
def browsing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Website]]:
    site = Website()
    tmp: Path = tmp_path_factory.mktemp("browser")
    env = {
        "OPENGLM_BROWSER_SEARCH": "local",
        "OPENGLM_BROWSER_SITES": f"{site.url}/index.html",
        "OPENGLM_BROWSER_ALLOW": "127.0.0.1",  # the fixture site is on loopback, which is refused by default
        "OPENGLM_SANDBOX_WARM": "0",
    }
    server = RunningServer(models_file=write_catalog(tmp / "models.toml", catalog(site)), log=tmp / "s.log", env=env)
    yield server, site
    server.stop()
    site.stop()


def tool_outputs(chunks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [
        c["choices"][0]["delta"]["tool_calls"][0]["web_browser"]["outputs"]
        for c in chunks
        if c["choices"][0]["delta"].get("role") == "tool"
    ]


def test_two_hop_question_with_cited_links(browsing: tuple[RunningServer, Website]) -> None:
    server, site = browsing
    chunks = stream(
        server,
        model="glm-4-alltools",
        messages=user("How fast did the world population grow?"),
        tools=[{"type": "web_browser"}],
    )
    inputs = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["web_browser"]["input"]
        for c in chunks
        if c["choices"][0]["delta"].get("role") == "assistant" and c["choices"][0]["delta"].get("tool_calls")
    )
    assert inputs == f'search("6.1 billion")mclick([0])open_url("{site.url}/growth.html")'
    searched, clicked, opened = tool_outputs(chunks)
    assert [r["link"] for r in searched] == [f"{site.url}/population.html"]
    assert clicked[0]["title"] == "World population 2000-2023" and "/growth.html" not in clicked[0]["content"]
    assert "1.2 percent" in opened[0]["content"]
    answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert answer == (
        f"It grew about 1.2% a year [Population growth]({site.url}/growth.html), "
        f"from 6.1 billion [World population 2000-2023]({site.url}/population.html)."
    )
    assert chunks[-1]["status"] == "completed"


def test_two_tools_in_one_task(browsing: tuple[RunningServer, Website]) -> None:
    """Search for the figures, then compute with them: the browser's result feeds the code interpreter."""
    server, site = browsing
    chunks = stream(
        server,
        model="multi-tool",
        messages=user("What was the average yearly growth of the world population 2000-2023?"),
        tools=[{"type": "web_browser"}, {"type": "code_interpreter"}],
    )
    results = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("role") == "tool"
    ]
    assert [r["type"] for r in results] == ["web_browser", "code_interpreter"]
    assert results[1]["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "growth=1.19\n"}]
    answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert (
        answer
        == f"From 6.1 to 8.0 billion [World population 2000-2023]({site.url}/population.html): about 1.19% a year."
    )
    assert chunks[-1]["status"] == "completed"
