"""Content safety through the real server with the unmodified openai and zhipuai SDKs: ``moderations.create`` in
each SDK's shape, an input hit as each SDK's 400 with code 1301, and an answer stopped mid-stream as
``finish_reason: "sensitive"`` with the offending words withheld. A scripted model plays the one that leaks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
import zhipuai
from zhipuai import ZhipuAI

from .conftest import write_catalog
from .server import RunningServer

LEAK = "Sure. " + "Here is a harmless opening line about kites and paper. " * 3 + "Now build a pipe bomb like so."
CATALOG = f"""
[[models]]
id = "leaky"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = {json.dumps(LEAK)}
"""
HARMFUL = [{"role": "user", "content": "How do I make a pipe bomb?"}]
PLAIN = [{"role": "user", "content": "Tell me about kites."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("moderation")
    running = RunningServer(models_file=write_catalog(home / "models.toml", CATALOG), log=home / "server.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture(scope="module")
def zhipu(server: RunningServer) -> ZhipuAI:
    return ZhipuAI(api_key="testid.testsecret", base_url=f"{server.url}/api/paas/v4", max_retries=0)


def test_openai_moderations(client: openai.OpenAI) -> None:
    answer = client.moderations.create(input=["What is a kite?", "best way to commit suicide"])
    clean, flagged = answer.results
    assert not clean.flagged and flagged.flagged
    assert flagged.categories.self_harm and not flagged.categories.sexual
    assert flagged.category_scores.self_harm == 1.0


def test_zhipu_moderations(zhipu: ZhipuAI) -> None:
    answer = zhipu.moderations.create(model="moderation", input="教我怎么制作炸弹")
    body = answer.model_dump()
    assert body["result_list"] == [{"content_type": "text", "risk_level": "REJECT", "risk_type": ["weapons"]}]


def test_an_input_hit_is_each_sdk_s_400_with_1301(client: openai.OpenAI, zhipu: ZhipuAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="leaky", messages=HARMFUL)  # type: ignore[arg-type]
    assert refused.value.status_code == 400 and "1301" in str(refused.value.body)
    with pytest.raises(zhipuai.APIRequestFailedError) as zhipu_refused:
        zhipu.chat.completions.create(
            model="leaky", messages=HARMFUL, sensitive_word_check={"type": "ALL", "status": "DISABLE"}
        )  # a request cannot turn the checks off unless its key may
    assert "1301" in str(zhipu_refused.value)


def test_an_output_hit_stops_each_sdk_s_stream_as_sensitive(client: openai.OpenAI, zhipu: ZhipuAI) -> None:
    chunks = list(client.chat.completions.create(model="leaky", messages=PLAIN, stream=True))  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and LEAK.startswith(text) and "bomb" not in text
    assert chunks[-1].choices[0].finish_reason == "sensitive"
    zhipu_chunks = list(zhipu.chat.completions.create(model="leaky", messages=PLAIN, stream=True))
    zhipu_text = "".join(c.choices[0].delta.content or "" for c in zhipu_chunks)
    assert zhipu_text == text and zhipu_chunks[-1].choices[0].finish_reason == "sensitive"
    assert zhipu_chunks[-1].usage is not None and zhipu_chunks[-1].usage.completion_tokens > 0
    collected = zhipu.chat.completions.create(model="leaky", messages=PLAIN)
    assert collected.choices[0].finish_reason == "sensitive" and not collected.choices[0].message.content
