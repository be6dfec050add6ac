"""A caller's ``request_id`` is bounded on every endpoint that takes one, at the schema.

It is stored with the usage record (``usage_records.request_id``, String(128)). Chat and embeddings accepted a
number as well as text and turned it into text later: 10**200 became 201 characters, which PostgreSQL refused at
settlement (the call was answered, its record went to the spool); a 200-digit *string* passed the same way, read
as a number once the 128-character text was refused. Completions and images ignored the field. Now one type
(``protocol/common.py: RequestId``) takes text of at most 128 characters without NUL or a number whose text is that
short, everywhere; anything else is 400 1214 before any work. Run on PostgreSQL, which enforces the column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.databases import postgres_database
from tests.fixtures.image_server import ImageServer
from tests.integration.conftest import write_catalog
from tests.integration.test_knowledge import EMBEDDINGS

from .conftest import RunningServer, error_code, new_key

CATALOG = """
[[models]]
id = "priced"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[models.prices]
input = 1
output = 1
[[models.options.script]]
when = ""
reply = "Hello."

[[agents]]
id = "glm-4-alltools"
model = "priced"

[[images]]
id = "cogview-3"
engine = "openai"
source = "{url}"
"""
MESSAGES = [{"role": "user", "content": "hi"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "priced", "messages": MESSAGES},
    "/api/paas/v4/chat/completions": {"model": "priced", "messages": MESSAGES, "stream": True},
    "/v1/completions": {"model": "priced", "prompt": "hi"},
    "/v1/embeddings": {"model": "all-minilm-l6-v2", "input": "hi"},
    "/v1/images/generations": {"model": "cogview-3", "prompt": "a cat"},
    "/v1/assistant": {"assistant_id": "glm-4-alltools", "messages": MESSAGES, "stream": True},
}
TOO_LONG = {"text": "r" * 129, "number": 10**200, "digits": "1" * 200, "nul": "a\x00b"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("request-ids")
    images = ImageServer()
    try:
        with postgres_database() as url:
            catalog = write_catalog(tmp / "models.toml", CATALOG.format(url=images.url) + EMBEDDINGS)
            env = {"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0", "OPENGLM_DATABASE_URL": url}
            running = RunningServer(models_file=catalog, log=tmp / "server.log", env=env)
            try:
                yield running
            finally:
                running.stop()
    finally:
        images.stop()


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return new_key(server, "request-ids", grant="100")


def post(server: RunningServer, key: str, path: str, request_id: Any) -> httpx.Response:
    body = {**BODIES[path], "request_id": request_id}
    return httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def recorded(server: RunningServer, request_id: str) -> list[tuple[str, int]]:
    with psycopg.connect(server.env["OPENGLM_DATABASE_URL"]) as connection:
        rows = connection.execute(
            "SELECT u.endpoint, l.amount FROM usage_records u JOIN ledger_entries l ON l.usage_id = u.id "
            "WHERE u.request_id = %s",
            (request_id,),
        )
        return [(str(endpoint), int(amount)) for endpoint, amount in rows]


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("kind", list(TOO_LONG))
def test_a_request_id_the_record_cannot_hold_is_refused(server: RunningServer, key: str, path: str, kind: str) -> None:
    refused = post(server, key, path, TOO_LONG[kind])
    assert refused.status_code == 400, refused.text
    assert error_code(refused) == "1214"
    assert "request_id" in refused.json()["error"]["message"]


@pytest.mark.parametrize("path", list(BODIES))
def test_a_request_id_of_128_characters_is_served_and_recorded(server: RunningServer, key: str, path: str) -> None:
    request_id = path.replace("/", "-").ljust(128, "x")
    served = post(server, key, path, request_id)
    assert served.status_code == 200, served.text
    served.read()
    charges = recorded(server, request_id)
    assert [endpoint for endpoint, _ in charges] and all(amount <= 0 for _, amount in charges), charges
    assert httpx.get(f"{server.url}/health").json()["metering"]["unrecorded_usage"] == 0


def test_a_number_is_recorded_as_its_text(server: RunningServer, key: str) -> None:
    number = 10**127  # 128 digits
    assert post(server, key, "/v1/chat/completions", number).status_code == 200
    assert [endpoint for endpoint, _ in recorded(server, str(number))] == ["chat.completions"]
