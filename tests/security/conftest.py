"""Shared pieces for the security regression tests: each test in this package reproduces one attack from
issue #12 against the real server (a loopback port, authentication on, accounts and keys made by the CLI)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.integration.server import RunningServer

__all__ = ["RunningServer", "error_code", "hermes_call", "new_key"]


def new_key(server: RunningServer, account: str, *extra: str, grant: str = "10") -> str:
    """A fresh user key of ``account`` (made with ``grant`` CNY on first use), as ``id.secret``."""
    accounts = server.cli("accounts", "list")
    if f"  {account}  " not in accounts:
        server.cli("accounts", "create", account, "--grant", grant)
    return server.cli("keys", "create", "--account", account, *extra).strip()


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def hermes_call(name: str, arguments: dict[str, Any]) -> str:
    """A hermes tool call as a scripted model writes it, quoted for a TOML catalog."""
    return json.dumps(f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>")
