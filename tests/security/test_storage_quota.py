"""Item 10: an account's files are bounded by a storage quota — uploads, code-interpreter outputs (the probe
published 20 × 5 MiB from one run), pictures and knowledge documents all count — enforced atomically against
concurrent uploads, with a clear 400 when exceeded, shown to the account and set per account by the operator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.databases import postgres_database
from tests.fixtures.image_server import ImageServer, png
from tests.integration.conftest import write_catalog
from tests.integration.test_knowledge import EMBEDDINGS

from . import hostile
from .conftest import RunningServer, error_code, hermes_call, new_key
from .test_request_bodies import answer_before_the_body

MiB = 1024 * 1024
CHUNK = 100 * 1024
CODE = "for n in range(20):\n    open(f'part-{n}.bin', 'wb').write(bytes(200 * 1024))\nprint('wrote 20')"

CATALOG = f"""
[[models]]
id = "script-writer"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "storage quota is full"
reply = "Some files could not be kept."
[[models.options.script]]
when = "wrote 20"
reply = "All files kept."
[[models.options.script]]
when = ""
reply = {hermes_call("python", {"code": CODE})}

[[agents]]
id = "writer-agent"
model = "script-writer"
{EMBEDDINGS}"""


IMAGES = """
[[images]]
id = "cogview-3"
engine = "openai"
source = "{url}"
"""


def start(tmp: Path, images: ImageServer | None = None, **env: str) -> RunningServer:
    settings = {
        "OPENGLM_AUTH": "on",
        "OPENGLM_SANDBOX_WARM": "0",
        "OPENGLM_STORAGE_QUOTA_MB": "1",
        "OPENGLM_GLMS_PER_ACCOUNT": "3",
        "OPENGLM_GLM_VERSIONS_KEPT": "2",
        **env,
    }
    catalog = CATALOG + (IMAGES.format(url=images.url) if images else "")
    return RunningServer(models_file=write_catalog(tmp / "models.toml", catalog), log=tmp / "s.log", env=settings)


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    provider = ImageServer()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, images: ImageServer) -> Iterator[RunningServer]:
    running = start(tmp_path_factory.mktemp("storage-quota"), images)
    yield running
    running.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(server: RunningServer, key: str, size: int = CHUNK) -> httpx.Response:
    files = {"file": ("notes.txt", b"n" * size)}
    return httpx.post(f"{server.url}/v1/files", data={"purpose": "assistant"}, files=files, headers=bearer(key))


def storage(server: RunningServer, key: str) -> dict[str, int | bool | None]:
    response = httpx.get(f"{server.url}/v1/account/storage", headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, int | bool | None] = response.json()
    return body


def kept_bytes(server: RunningServer, key: str) -> int:
    # Zhipu's prefix lists every purpose (/v1 lists only the openai SDK's purposes unless asked).
    listed = httpx.get(f"{server.url}/api/paas/v4/files", params={"limit": 100}, headers=bearer(key)).json()
    return sum(int(f["bytes"]) for f in listed["data"])


def burst(server: RunningServer, key: str, uploads: int = 16) -> list[httpx.Response]:
    with ThreadPoolExecutor(uploads) as pool:
        return list(pool.map(lambda _: upload(server, key), range(uploads)))


def assert_burst_bounded(server: RunningServer, key: str) -> None:
    responses = burst(server, key)
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) == MiB // CHUNK  # exactly what fits: no two uploads passed a check only one fits
    assert all(r.status_code == 400 and error_code(r) == "1210" for r in refused)
    assert "storage quota exceeded" in refused[0].json()["error"]["message"]
    usage = storage(server, key)
    assert usage["used_bytes"] == kept_bytes(server, key) == len(accepted) * CHUNK <= MiB
    assert usage["quota_bytes"] == MiB and usage["account_quota"] is False


def test_concurrent_uploads_stop_at_the_quota(server: RunningServer) -> None:
    assert_burst_bounded(server, new_key(server, "burst"))


def test_concurrent_uploads_stop_at_the_quota_on_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        running = start(tmp_path, OPENGLM_DATABASE_URL=url)
        try:
            assert_burst_bounded(running, new_key(running, "burst"))
        finally:
            running.stop()


def test_a_code_run_publishes_only_what_fits_and_says_so(server: RunningServer) -> None:
    key = new_key(server, "coder")
    body = {
        "model": "writer-agent",
        "stream": True,
        "tools": [{"type": "code_interpreter"}],
        "messages": [{"role": "user", "content": "Write the parts."}],
    }
    with httpx.stream(
        "POST", f"{server.url}/api/paas/v4/chat/completions", json=body, headers=bearer(key), timeout=120
    ) as response:
        assert response.status_code == 200
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    # The run succeeded; the model was told which files were not kept, and said so.
    assert "".join(d.get("content") or "" for d in deltas if d.get("role") != "tool") == "Some files could not be kept."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    links = [o for d in deltas if d.get("role") == "tool" for o in d["tool_calls"][0]["code_interpreter"]["outputs"]]
    published = [o for o in links if o["type"] == "file"]
    assert len(published) == MiB // (200 * 1024)  # 5 of the 20 files fit in 1 MiB
    usage = storage(server, key)
    assert usage["used_bytes"] == kept_bytes(server, key) == len(published) * 200 * 1024


def test_the_operator_sets_an_accounts_quota(server: RunningServer) -> None:
    key = new_key(server, "grower")
    for _ in range(MiB // CHUNK):
        assert upload(server, key).status_code == 200
    assert upload(server, key).status_code == 400
    admin = bearer(server.cli("keys", "create", "--admin").strip())
    raised = httpx.put(f"{server.url}/admin/accounts/grower/storage", json={"quota_mb": 2}, headers=admin)
    assert raised.status_code == 200 and raised.json()["quota_bytes"] == 2 * MiB and raised.json()["account_quota"]
    assert upload(server, key).status_code == 200
    assert storage(server, key)["quota_bytes"] == 2 * MiB
    shown = server.cli("accounts", "storage", "grower", "--default")
    assert "of 1.0 MB (the default quota)" in shown
    assert upload(server, key).status_code == 400  # above the default again: kept files stay, new ones wait
    # -1 is unlimited and 0 is nothing, as in OPENGLM_STORAGE_QUOTA_MB (before: -1 was refused, 0 meant nothing
    # here and unlimited there).
    unlimited = httpx.put(f"{server.url}/admin/accounts/grower/storage", json={"quota_mb": -1}, headers=admin)
    assert unlimited.status_code == 200 and unlimited.json()["quota_bytes"] is None, unlimited.text
    assert upload(server, key, 2 * MiB).status_code == 200 and storage(server, key)["account_quota"] is True
    assert "of unlimited (its own quota)" in server.cli("accounts", "storage", "grower")
    assert "of 0.0 MB (its own quota)" in server.cli("accounts", "storage", "grower", "--quota-mb", "0")
    assert upload(server, key, 1).status_code == 400
    refused = httpx.put(f"{server.url}/admin/accounts/grower/storage", json={"quota_mb": -2}, headers=admin)
    assert refused.status_code == 400
    assert httpx.put(
        f"{server.url}/admin/accounts/grower/storage", json={"quota_mb": 1}, headers=bearer(key)
    ).status_code in (
        401,
        403,
    )


def test_knowledge_documents_count_and_a_refused_one_leaves_nothing(server: RunningServer) -> None:
    key = new_key(server, "librarian")
    base = httpx.post(f"{server.url}/v1/knowledge", json={"name": "notes"}, headers=bearer(key)).json()["id"]
    document = b"## Notes\n\n" + b"Tomatoes need sun. " * 30_000  # ~570 KB of text
    form = {"purpose": "retrieval", "knowledge_id": base}
    first = httpx.post(
        f"{server.url}/v1/files", data=form, files={"file": ("a.md", document)}, headers=bearer(key), timeout=60
    )
    assert first.status_code == 200, first.text
    assert storage(server, key)["used_bytes"] == len(document)
    second = httpx.post(
        f"{server.url}/v1/files", data=form, files={"file": ("b.md", document + b"!")}, headers=bearer(key), timeout=60
    )
    assert second.status_code == 400 and error_code(second) == "1210"
    listed = httpx.get(f"{server.url}/v1/files", params={"knowledge_id": base}, headers=bearer(key)).json()
    assert [d["name"] for d in listed["list"]] == ["a.md"]


def chunked_upload(server: RunningServer, key: str, form: dict[str, str], name: str, data: bytes) -> httpx.Response:
    """A multipart upload sent chunked (no Content-Length), as a client streaming a file does: nothing tells the
    server its size before the body is read."""
    boundary = "quota-test-boundary"
    fields = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in form.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    parts = [*fields, head, data, f"\r\n--{boundary}--\r\n".encode()]
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **bearer(key)}
    return httpx.post(f"{server.url}/v1/files", content=iter(parts), headers=headers, timeout=120)


def test_an_upload_the_account_has_no_room_for_is_refused_before_its_body(server: RunningServer) -> None:
    """A 20 MiB upload announced to an account with 1 MiB of room: refused from the headers, while the body was
    never sent (before the fix the server waited for all of it, to refuse it by the quota afterwards)."""
    key = new_key(server, "announcer")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "multipart/form-data; boundary=b"}
    form = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    status, body, _ = answer_before_the_body(server, "/v1/files", headers, length=20 * MiB, prefix=form)
    assert status == 400 and body["error"]["code"] == "1210", body
    assert upload(server, key, MiB - 1024).status_code == 200  # a file that fits is not refused for its form
    status, body, _ = answer_before_the_body(server, "/v1/files", headers, length=128 * 1024, prefix=form)
    assert status == 400 and body["error"]["code"] == "1210", body


def test_contents_are_examined_only_when_they_fit(server: RunningServer) -> None:
    """Streamed uploads bigger than the room: refused for the quota before anything reads their contents. Before
    the fix a 2 MiB JSONL file was checked line by line (and refused as malformed), and a Word document was parsed
    for up to the parse deadline, before the quota was consulted."""
    key = new_key(server, "examiner")
    refused = chunked_upload(server, key, {"purpose": "batch"}, "lines.jsonl", b"not json\n" * (2 * MiB // 9))
    assert refused.status_code == 400 and error_code(refused) == "1210", refused.text
    base = httpx.post(f"{server.url}/v1/knowledge", json={"name": "slow"}, headers=bearer(key)).json()["id"]
    started = time.monotonic()
    slow = hostile.slow_docx(8)  # 2 MiB: parsing its 8 MiB of XML takes tens of seconds
    refused = chunked_upload(server, key, {"purpose": "retrieval", "knowledge_id": base}, "slow.docx", slow)
    assert refused.status_code == 400 and error_code(refused) == "1210", refused.text
    assert time.monotonic() - started < 10
    assert storage(server, key)["used_bytes"] == 0


def draw(server: RunningServer, key: str, n: int) -> httpx.Response:
    body = {"model": "cogview-3", "prompt": "a red square", "n": n}
    return httpx.post(f"{server.url}/v1/images/generations", json=body, headers=bearer(key), timeout=60)


def pictures(server: RunningServer, key: str) -> list[dict[str, object]]:
    # Zhipu's prefix lists every purpose (/v1 lists only the openai SDK's purposes unless asked).
    listed = httpx.get(f"{server.url}/api/paas/v4/files", params={"limit": 100}, headers=bearer(key)).json()["data"]
    return [f for f in listed if f["purpose"] == "image-generation"]


def billed_images(server: RunningServer, key: str) -> int:
    usage = httpx.get(f"{server.url}/v1/account/usage", params={"by": "model"}, headers=bearer(key)).json()
    return sum(int(row["images"]) for row in usage["data"])


def test_a_batch_of_pictures_is_kept_whole_or_not_at_all_and_never_free(
    server: RunningServer, images: ImageServer
) -> None:
    """Room for one and a half pictures, three asked for. The first time the server cannot know a picture's size:
    all three are drawn (the provider is paid), none is kept, and all three are billed — before the fix the first
    was kept, the call failed and nothing was billed (a free picture). Once it knows the size, the same request is
    refused before drawing and costs nothing; one picture still fits."""
    key = new_key(server, "painter")
    size = len(png())
    assert upload(server, key, MiB - size - size // 2).status_code == 200
    asked = len(images.requests)
    refused = draw(server, key, 3)
    assert refused.status_code == 400 and error_code(refused) == "1210", refused.text
    assert "3 picture(s) were drawn, and are charged" in refused.json()["error"]["message"]
    assert len(images.requests) == asked + 1 and pictures(server, key) == []
    assert billed_images(server, key) == 3
    assert storage(server, key)["used_bytes"] == kept_bytes(server, key) == MiB - size - size // 2
    again = draw(server, key, 3)  # now refused before the provider is asked
    assert again.status_code == 400 and error_code(again) == "1210" and "drawn" not in again.text
    assert len(images.requests) == asked + 1 and billed_images(server, key) == 3
    one = draw(server, key, 1)
    assert one.status_code == 200, one.text
    assert len(pictures(server, key)) == 1 and billed_images(server, key) == 4
    fetched = httpx.get(one.json()["data"][0]["url"], headers=bearer(key))
    assert fetched.status_code == 200 and fetched.content == png()


def padded_api(pad: str, kib: int) -> dict[str, str]:
    """An OpenAPI document of about ``kib`` KiB (a GLM may have four of up to 200 KB each)."""
    document = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://example.com"}],
        "paths": {},
        "x-pad": pad * (kib * 1024),
    }
    return {"openapi": json.dumps(document)}


def save(
    server: RunningServer, key: str, apis: list[dict[str, str]], glm: str | None = None, **details: str
) -> httpx.Response:
    body = {"name": "Big", **details, "config": {"model": "script-writer", "http_apis": apis}}
    if glm is None:
        return httpx.post(f"{server.url}/v1/glms", json=body, headers=bearer(key), timeout=60)
    return httpx.put(f"{server.url}/v1/glms/{glm}", json=body, headers=bearer(key), timeout=60)


def test_glm_configurations_count_against_the_quota_and_are_bounded(server: RunningServer) -> None:
    """Before the fix every GLM edit stored a whole new configuration (up to four 200 KB documents) outside any
    quota, with no bound on GLMs or versions: an account could fill the database. Now configurations count as
    storage, only a changed configuration is a new version, old versions go, and GLMs per account are capped."""
    key = new_key(server, "hoarder")
    big = [padded_api(letter, 190) for letter in "abcd"]  # ~760 KiB of configuration
    created = save(server, key, big)
    assert created.status_code == 200, created.text
    glm = created.json()["id"]
    used = storage(server, key)["used_bytes"]
    assert isinstance(used, int) and 4 * 190 * 1024 < used < MiB
    refused = save(server, key, [padded_api(letter, 190) for letter in "efgh"], glm)  # a second ~760 KiB version
    assert refused.status_code == 400 and error_code(refused) == "1210", refused.text
    assert "GLM version's configuration" in refused.json()["error"]["message"]
    renamed = save(server, key, big, glm, name="Renamed")  # the same configuration: no new version, no bytes
    assert renamed.status_code == 200 and renamed.json()["version"] == 1 and renamed.json()["name"] == "Renamed"
    assert storage(server, key)["used_bytes"] == used
    for letter in "xyz":  # small edits: only the newest two versions are kept, and only theirs count
        assert save(server, key, [padded_api(letter, 1)], glm).status_code == 200
    versions = httpx.get(f"{server.url}/v1/glms/{glm}/versions", headers=bearer(key)).json()["data"]
    assert [v["version"] for v in versions] == [4, 3]
    assert storage(server, key)["used_bytes"] < 8 * 1024
    for _ in range(2):
        assert save(server, key, []).status_code == 200
    capped = save(server, key, [])
    assert capped.status_code == 400 and error_code(capped) == "1210" and "3 GLMs" in capped.text, capped.text
    assert httpx.delete(f"{server.url}/v1/glms/{glm}", headers=bearer(key)).status_code == 200
    assert save(server, key, []).status_code == 200
