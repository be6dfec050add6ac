"""Web search through the real server with the unmodified SDKs, on a real search provider: the local index of a
fixture website on 127.0.0.1 (allow-listed). The chat ``web_search`` tool grounds an answer and returns its
results (collected and streamed, both SDKs); ``enable: false`` turns it off; ``web_search.web_search`` and
``tools.web_search`` (web-search-pro, streamed and not) answer in Zhipu's shapes. A scripted model answers only
when the search results reached its prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from zhipuai import ZhipuAI

from ..fixtures.website import Website
from .conftest import write_catalog
from .server import RunningServer

GROUNDED = "Sunny days with highs of 22 degrees [ref_1]."
CATALOG = f"""
[[models]]
id = "searcher"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = "Sunny days with highs of 22 degrees all week"
reply = {json.dumps(GROUNDED)}
[[models.options.script]]
when = ""
reply = "I did not search."
"""
WEATHER = [{"role": "user", "content": "Beijing weather"}]


@pytest.fixture(scope="module")
def searching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Website]]:
    tmp = tmp_path_factory.mktemp("websearch")
    site = Website()
    env = {
        "OPENGLM_BROWSER_SEARCH": "local",
        "OPENGLM_BROWSER_SITES": f"{site.url}/index.html",
        "OPENGLM_BROWSER_ALLOW": "127.0.0.1",  # the fixture site is on loopback, which is refused by default
        "OPENGLM_SANDBOX_WARM": "0",
    }
    server = RunningServer(models_file=write_catalog(tmp / "models.toml", CATALOG), log=tmp / "s.log", env=env)
    yield server, site
    server.stop()
    site.stop()


@pytest.fixture(scope="module")
def zhipu(searching: tuple[RunningServer, Website]) -> ZhipuAI:
    return ZhipuAI(api_key="testid.testsecret", base_url=f"{searching[0].url}/api/paas/v4", max_retries=0)


@pytest.fixture(scope="module")
def client(searching: tuple[RunningServer, Website]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{searching[0].url}/v1", api_key="sk-test", max_retries=0)


def tool(**options: Any) -> dict[str, Any]:
    return {"type": "web_search", "web_search": {"enable": True, **options}}


def test_the_chat_web_search_tool_grounds_the_answer_and_returns_its_results(
    zhipu: ZhipuAI, searching: tuple[RunningServer, Website]
) -> None:
    _, site = searching
    reply = zhipu.chat.completions.create(model="searcher", messages=WEATHER, tools=[tool(search_result=True)])
    assert reply.choices[0].message.content == GROUNDED
    results = reply.model_dump()["web_search"]
    assert results[0]["link"] == f"{site.url}/weather.html" and results[0]["refer"] == "ref_1"
    assert results[0]["title"] == "Beijing weather" and results[0]["media"] == "127.0.0.1"
    chunks = list(
        zhipu.chat.completions.create(model="searcher", messages=WEATHER, tools=[tool(search_result=True)], stream=True)
    )
    assert chunks[0].model_dump()["web_search"] == results
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == GROUNDED
    quiet = zhipu.chat.completions.create(model="searcher", messages=WEATHER, tools=[tool()])
    assert quiet.choices[0].message.content == GROUNDED and not quiet.model_dump().get("web_search")
    off = zhipu.chat.completions.create(model="searcher", messages=WEATHER, tools=[tool(enable=False)])
    assert off.choices[0].message.content == "I did not search."


def test_openai_clients_send_the_tool_too(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="searcher",
        messages=WEATHER,  # type: ignore[arg-type]
        tools=[tool(search_result=True, search_query="Beijing weather", count=2)],  # type: ignore[list-item]
    )
    assert reply.choices[0].message.content == GROUNDED
    assert len((reply.model_extra or {})["web_search"]) <= 2


# The SDK types search_intent and search_result as one object; Zhipu's API (and this server) answer with lists,
# which its lenient parser keeps and model_dump() warns about.
SDK_TYPES_ONE = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")


@SDK_TYPES_ONE
def test_web_search_answers_in_zhipu_s_shape(zhipu: ZhipuAI, searching: tuple[RunningServer, Website]) -> None:
    _, site = searching
    answer = zhipu.web_search.web_search(
        search_engine="search_std",
        search_query="6.1 billion",
        count=3,
        search_domain_filter="127.0.0.1",
        content_size="high",
    ).model_dump()
    assert answer["search_intent"][0]["query"] == "6.1 billion"
    [first, *_] = answer["search_result"]
    assert first["link"] == f"{site.url}/population.html"
    assert "8.0 billion in 2023" in first["content"]  # content_size high: the page itself, not its snippet
    with pytest.raises(Exception, match="search_recency_filter"):
        zhipu.web_search.web_search(search_query="x", search_recency_filter="lastCentury")


@SDK_TYPES_ONE
def test_web_search_pro_through_tools(zhipu: ZhipuAI, searching: tuple[RunningServer, Website]) -> None:
    _, site = searching
    messages = [{"role": "user", "content": "World population 2000-2023"}]
    answer = zhipu.tools.web_search(model="web-search-pro", messages=messages, stream=False).model_dump()
    calls = answer["choices"][0]["message"]["tool_calls"]
    assert [c["type"] for c in calls] == ["search_intent", "search_result"]
    assert f"{site.url}/population.html" in [r["link"] for r in calls[1]["search_result"]]
    chunks = list(zhipu.tools.web_search(model="web-search-pro", messages=messages, stream=True))
    streamed = [c.model_dump()["choices"][0]["delta"].get("tool_calls") for c in chunks]
    assert [calls[0]["type"] for calls in streamed if calls] == ["search_intent", "search_result"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    server, _ = searching
    url = f"{server.url}/api/paas/v4/tools"
    unknown = httpx.post(url, json={"model": "web-search-lite", "messages": messages})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "1211"


def test_the_responses_api_s_web_search_tool(client: openai.OpenAI, searching: tuple[RunningServer, Website]) -> None:
    _, site = searching
    response = client.responses.create(model="searcher", input="Beijing weather", tools=[{"type": "web_search"}])
    search, message = response.output
    assert search.type == "web_search_call" and search.status == "completed"
    assert message.type == "message" and response.output_text == GROUNDED
    [citation] = message.content[0].annotations  # type: ignore[union-attr]
    assert citation.type == "url_citation" and citation.url == f"{site.url}/weather.html"
    assert response.output_text[citation.start_index : citation.end_index] == "[ref_1]"
    with client.responses.stream(model="searcher", input="Beijing weather", tools=[{"type": "web_search"}]) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["web_search_call", "message"]
    assert final.output_text == GROUNDED
