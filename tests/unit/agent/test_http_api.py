"""OpenAPI operations as server-side tools, called against a real JSON API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from openglm.agent.browser.fetch import FetchError, SafeFetcher
from openglm.agent.tools.base import ToolContext
from openglm.agent.tools.http_api import load_document, load_document_isolated, operations, parse_document
from openglm.errors import InvalidFieldError

from ...fixtures.api_server import API_KEY, ApiServer, openapi

CONTEXT = ToolContext("conv", "acct")
AUTH = {"type": "header", "name": "X-Api-Key", "value": API_KEY}


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    yield server
    server.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    allowed = SafeFetcher(allow=["127.0.0.1"])
    yield allowed
    await allowed.close()


def test_operations_become_functions(api: ApiServer, fetcher: SafeFetcher) -> None:
    tools = {t.function_name: t for t in operations(openapi(api.url), base_url=None, auth=AUTH, fetcher=fetcher)}
    weather = tools["get_weather"].definition(CONTEXT)
    assert weather["description"] == "Current weather of a city"
    assert weather["parameters"]["required"] == ["city"]
    assert weather["parameters"]["properties"]["units"]["enum"] == ["metric", "imperial"]
    note = tools["add_note"].definition(CONTEXT)
    assert note["parameters"]["properties"]["body"]["properties"] == {"text": {"type": "string"}}


async def test_calls_fill_path_query_body_and_auth(api: ApiServer, fetcher: SafeFetcher) -> None:
    tools = {t.function_name: t for t in operations(openapi(api.url), base_url=None, auth=AUTH, fetcher=fetcher)}
    result = await tools["get_weather"].run({"city": "Bei jing", "units": "metric"}, CONTEXT)
    assert result.outputs[0]["status"] == 200
    assert json.loads(result.outputs[0]["content"]) == {"city": "Bei%20jing", "temp": 22, "units": "metric"}
    assert api.calls[-1]["query"] == {"units": ["metric"]}
    stored = await tools["add_note"].run({"body": {"text": "hi"}}, CONTEXT)
    assert stored.outputs[0]["status"] == 201 and api.calls[-1]["body"] == {"text": "hi"}


async def test_wrong_auth_is_reported_to_the_model(api: ApiServer, fetcher: SafeFetcher) -> None:
    bad = {"type": "header", "name": "X-Api-Key", "value": "wrong"}
    (tool, _) = operations(openapi(api.url), base_url=None, auth=bad, fetcher=fetcher)
    result = await tool.run({"city": "x"}, CONTEXT)
    assert result.observation.startswith("HTTP 401")


async def test_private_addresses_need_the_allow_list(api: ApiServer) -> None:
    strict = SafeFetcher()
    try:
        (tool, _) = operations(openapi(api.url), base_url=None, auth=AUTH, fetcher=strict)
        with pytest.raises(FetchError, match="private or local"):
            await tool.run({"city": "x"}, CONTEXT)
    finally:
        await strict.close()


def test_documents_load_from_json_yaml_or_a_file(tmp_path, api: ApiServer) -> None:  # type: ignore[no-untyped-def]
    document = openapi(api.url)
    assert load_document(json.dumps(document))["paths"]
    path = tmp_path / "api.json"
    path.write_text(json.dumps(document))
    assert load_document(str(path))["paths"]
    assert load_document("openapi: 3.0.0\npaths: {}\n")["paths"] == {}
    with pytest.raises(InvalidFieldError):
        load_document('{"info": {}}')
    with pytest.raises(InvalidFieldError, match="base_url"):
        operations({"paths": {}, "servers": [{"url": "/relative"}]}, base_url=None, auth={}, fetcher=SafeFetcher())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('a: &a ["x", "x"]\nb: [*a, *a]\nopenapi: 3.0.0\npaths: {}\n', "aliases"),
        ('{"paths": ' + "[" * 5000 + "]" * 5000 + "}", "nested more than"),
        ('{"paths": {"/x": [1, 2]}}', "is not an object"),
        ('{"paths": {"/x": {"get": "nope"}}}', "is not an object"),
        ('{"paths": {"/x": {"parameters": null}}}', "parameters"),
        ('{"paths": {"/x": {"get": {"parameters": [{"in": "query"}]}}}}', "parameters"),
        ('{"paths": {"/x": {"post": {"requestBody": {"content": []}}}}}', "requestBody"),
        ('{"paths": {}, "servers": [{"url": 5}]}', "servers"),
        ('{"paths": {"/x": {"get": {"summary": ["a"]}}}}', "non-text"),
    ],
)
def test_malformed_or_hostile_documents_are_clear_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidFieldError, match=reason):
        parse_document(text)


async def test_documents_for_requests_are_parsed_in_a_worker_and_remembered(api: ApiServer) -> None:
    from openglm.untrusted.pool import shared_pool

    text = json.dumps(openapi(api.url))
    try:
        document = await load_document_isolated(text)
        assert document["paths"] and load_document(text) is document  # the chat path finds it parsed
        with pytest.raises(InvalidFieldError, match="aliases"):
            await load_document_isolated("openapi: 3.0.0\nx: &a 1\ny: *a\npaths: {}\n")
    finally:
        await shared_pool().close()
