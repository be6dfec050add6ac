"""OpenAPI operations as server-side tools, called against a real JSON API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openglm.agent.browser.fetch import IPAddress, SafeFetcher
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
    strict = SafeFetcher(allow_setting="OPENGLM_HTTP_TOOLS_ALLOW")
    try:
        (tool, _) = operations(openapi(api.url), base_url=None, auth=AUTH, fetcher=strict)
        calls = len(api.calls)
        result = await tool.run({"city": "x"}, CONTEXT)
        assert "private or local" in result.outputs[0]["content"] and "OPENGLM_HTTP_TOOLS_ALLOW" in result.observation
        assert result.observation.startswith("[the API call was refused") and len(api.calls) == calls
    finally:
        await strict.close()


async def test_the_request_goes_to_the_address_that_was_checked(api: ApiServer) -> None:
    """A name is resolved once, by the policy; the connection goes to that address (no second lookup that a
    rebinding DNS server could answer differently), with the name in the Host header."""
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    pinned = SafeFetcher(allow=["127.0.0.0/8"], resolver=resolver)
    try:
        port = api.url.rsplit(":", 1)[1]
        (tool, _) = operations(openapi(f"http://api.internal.test:{port}"), base_url=None, auth=AUTH, fetcher=pinned)
        result = await tool.run({"city": "Paris"}, CONTEXT)
        assert result.outputs[0]["status"] == 200, result.observation  # the system resolver knows no such name
        assert lookups == ["api.internal.test"] and api.calls[-1]["path"] == "/cities/Paris/weather"
    finally:
        await pinned.close()


class EndlessBody(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        with contextlib.suppress(OSError):
            while True:
                self.wfile.write(b"x" * 65536)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_a_response_is_read_only_as_far_as_the_model_sees_it() -> None:
    endless = ThreadingHTTPServer(("127.0.0.1", 0), EndlessBody)
    threading.Thread(target=endless.serve_forever, daemon=True).start()
    fetcher = SafeFetcher(allow=["127.0.0.1"], timeout=5)
    try:
        url = f"http://127.0.0.1:{endless.server_address[1]}"
        (tool, *_) = operations(openapi(url), base_url=None, auth={}, fetcher=fetcher)
        result = await asyncio.wait_for(tool.run({"city": "x"}, CONTEXT), 10)
        assert result.outputs[0]["status"] == 200 and result.outputs[0]["content"] == "x" * 4000
    finally:
        await fetcher.close()
        endless.shutdown()
        endless.server_close()


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
