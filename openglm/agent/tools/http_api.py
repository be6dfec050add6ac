"""Server-side HTTP tools from an OpenAPI 3 document: each operation becomes one function the model can call,
run by the server with the document's auth settings, through an SSRF-safe fetcher whose policy the caller picks
(``agent/service.py``: user-defined tools reach public addresses and ``OPENGLM_HTTP_TOOLS_ALLOW`` only)."""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ...errors import InvalidFieldError
from ...untrusted.loaders import load_json, load_yaml
from ...untrusted.pool import shared_pool
from ..browser.fetch import FetchError, FetchRefused, SafeFetcher, settable_header
from .base import AgentTool, ToolContext, ToolResult

METHODS = ("get", "post", "put", "patch", "delete")
RESPONSE_CHARS = 4000
RESPONSE_BYTES = 4 * RESPONSE_CHARS  # enough for RESPONSE_CHARS of UTF-8; the rest of a body is never read
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def load_document(source: str) -> dict[str, Any]:
    """An OpenAPI document given inline (JSON or YAML) or as a file path (catalog agents only), parsed once per
    text (``parse_document``; the result is shared: read it, never change it)."""
    text = source if source.lstrip().startswith(("{", "openapi", "swagger")) else Path(source).read_text()
    if (known := _documents.get(text)) is not None:
        _documents.move_to_end(text)
        return known
    return _remember(text, parse_document(text))


async def load_document_isolated(source: str) -> dict[str, Any]:
    """``load_document`` for a request: an inline document not seen before is parsed in a worker process, off the
    event loop, with the parse deadline and memory limit of ``untrusted.pool``."""
    if source in _documents or not source.lstrip().startswith(("{", "openapi", "swagger")):
        return load_document(source)
    document = await shared_pool().run(parse_document, source, what="the OpenAPI document")
    return _remember(source, document)


def parse_document(text: str) -> dict[str, Any]:
    """An OpenAPI document's text (JSON, or YAML without anchors and aliases, nested at most 64 deep) as data, with
    the shapes ``operations`` reads checked, so a malformed document is a 400 rather than a server error."""
    try:
        document = load_json(text, what="the OpenAPI document")
    except json.JSONDecodeError:
        import yaml

        try:
            document = load_yaml(text, what="the OpenAPI document")
        except yaml.YAMLError as exc:
            raise InvalidFieldError(f"the OpenAPI document is neither JSON nor YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise InvalidFieldError("not an OpenAPI document: it has no paths")
    _check_shapes(document)
    return document


def _check_shapes(document: dict[str, Any]) -> None:
    servers = document.get("servers")
    if servers is not None and not (
        isinstance(servers, list) and all(isinstance(s, dict) and isinstance(s.get("url", ""), str) for s in servers)
    ):
        raise InvalidFieldError("the OpenAPI document's servers must be a list of objects with a url")
    for path, item in document["paths"].items():
        if not isinstance(item, dict):
            raise InvalidFieldError(f"the OpenAPI document's path {path!r} is not an object")
        _check_parameters(item.get("parameters", []), path)
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            if not isinstance(operation, dict):
                raise InvalidFieldError(f"the OpenAPI document's {method.upper()} {path} is not an object")
            _check_parameters(operation.get("parameters", []), path)
            body = operation.get("requestBody", {})
            content = body.get("content", {}) if isinstance(body, dict) else None
            json_body = content.get("application/json", {}) if isinstance(content, dict) else None
            if not isinstance(json_body, dict) or not isinstance(json_body.get("schema", {}), dict):
                raise InvalidFieldError(f"the OpenAPI document's {method.upper()} {path} has a malformed requestBody")
            for value in (operation.get("operationId"), operation.get("summary"), operation.get("description")):
                if value is not None and not isinstance(value, str):
                    raise InvalidFieldError(f"the OpenAPI document's {method.upper()} {path} has a non-text name")


def _check_parameters(parameters: Any, path: str) -> None:
    if not isinstance(parameters, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("schema", {}), dict)
        for p in parameters
    ):
        raise InvalidFieldError(f"the OpenAPI document's parameters of {path!r} must be objects with a name")


CACHED_DOCUMENTS = 64
_documents: OrderedDict[str, dict[str, Any]] = OrderedDict()


def _remember(text: str, document: dict[str, Any]) -> dict[str, Any]:
    _documents[text] = document
    while len(_documents) > CACHED_DOCUMENTS:
        _documents.popitem(last=False)
    return document


class HttpOperation(AgentTool):
    """One operation of an OpenAPI document: built per agent from its documents (``operations``), not a
    built-in a request names, so it is not in ``agent_tools``."""

    type = "function"
    input_argument = ""
    streams_input = False

    def __init__(
        self,
        *,
        name: str,
        method: str,
        url: str,
        description: str,
        parameters: list[dict[str, Any]],
        body_schema: dict[str, Any] | None,
        auth: dict[str, str],
        fetcher: SafeFetcher,
    ):
        self.function_name = name
        self.method = method.upper()
        self.url = url
        self.description = description
        self.parameters = parameters
        self.body_schema = body_schema
        self.auth = auth
        self.fetcher = fetcher

    def definition(self, context: ToolContext) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for parameter in self.parameters:
            properties[parameter["name"]] = {**parameter.get("schema", {"type": "string"})}
            if parameter.get("description"):
                properties[parameter["name"]]["description"] = parameter["description"]
            if parameter.get("required"):
                required.append(parameter["name"])
        if self.body_schema is not None:
            properties["body"] = self.body_schema
            required.append("body")
        return {
            "name": self.function_name,
            "description": self.description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        url, query, headers = self.url, {}, {}
        for parameter in self.parameters:
            if parameter["name"] not in arguments:
                continue
            value = arguments[parameter["name"]]
            where = parameter.get("in", "query")
            if where == "path":
                url = url.replace("{" + parameter["name"] + "}", quote(str(value), safe=""))
            elif where == "header":
                headers[parameter["name"]] = str(value)
            else:
                query[parameter["name"]] = value
        self._authorize(headers, query)
        try:
            reply = await self.fetcher.request(
                self.method,
                url,
                limit=RESPONSE_BYTES,
                params=query,
                headers=headers,
                json=arguments.get("body") if self.body_schema else None,
            )
        except FetchRefused as exc:  # the address policy: nothing was sent
            return ToolResult([{"content": f"refused: {exc}"}], f"[the API call was refused: {exc}]")
        except FetchError as exc:  # unreachable, too slow, a body that cannot be decoded
            return ToolResult([{"content": f"request failed: {exc}"}], f"[the API call failed: {exc}]")
        text = reply.body.decode(errors="replace")[:RESPONSE_CHARS]
        observation = f"HTTP {reply.status_code}\n{text}"
        return ToolResult([{"status": reply.status_code, "content": text}], observation)

    def _authorize(self, headers: dict[str, str], query: dict[str, Any]) -> None:
        kind = self.auth.get("type")
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {self.auth['value']}"
        elif kind == "header":
            headers[self.auth["name"]] = self.auth["value"]
        elif kind == "query":
            query[self.auth["name"]] = self.auth["value"]


def operations(
    document: dict[str, Any], *, base_url: str | None, auth: dict[str, str], fetcher: SafeFetcher
) -> list[HttpOperation]:
    """Every operation of the document as a tool (names from operationId, else method_path). A header the server
    sets itself (``Host``, framing, hop-by-hop) cannot be an operation's parameter nor the auth's header."""
    base = server_url(document, base_url)
    if auth.get("type") == "header" and not settable_header(str(auth.get("name", ""))):
        raise InvalidFieldError(f"auth: the header {auth.get('name')!r} is set by the server, not by an HTTP tool")
    tools = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            name = _NAME.sub("_", operation.get("operationId") or f"{method}_{path.strip('/')}")[:64]
            parameters = [*shared, *operation.get("parameters", [])]
            for parameter in parameters:
                if parameter.get("in") == "header" and not settable_header(parameter["name"]):
                    raise InvalidFieldError(
                        f"the OpenAPI document's {method.upper()} {path} has a header parameter "
                        f"{parameter['name']!r}, which is set by the server, not by an HTTP tool"
                    )
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            tools.append(
                HttpOperation(
                    name=name,
                    method=method,
                    url=base + path,
                    description=operation.get("summary") or operation.get("description") or f"{method.upper()} {path}",
                    parameters=parameters,
                    body_schema=body,
                    auth=auth,
                    fetcher=fetcher,
                )
            )
    return tools


def server_url(document: dict[str, Any], base_url: str | None) -> str:
    """The URL every operation's path is appended to: ``base_url``, else the document's first server."""
    servers = document.get("servers") or [{}]
    base = str(base_url or servers[0].get("url") or "").rstrip("/")
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidFieldError(f"the server URL {base!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidFieldError("the OpenAPI document names no absolute server URL; give base_url")
    return base


def server_origin(document: dict[str, Any], base_url: str | None) -> str:
    """``host:port`` of the server the operations call, as an allow-list entry of ``SafeFetcher``."""
    parts = urlsplit(server_url(document, base_url))
    host = parts.hostname or ""
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
