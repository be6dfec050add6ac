"""Vision through the real server with the unmodified SDKs: a catalog model with ``vision = true`` on the remote
engine, its upstream a second server (``fixtures/vision_upstream.py``) that records what it receives. An image —
as a data URL (openai), as bare base64 (zhipuai strips the prefix), or by URL, which OpenGLM fetches through its
safe fetcher so the upstream never sees the address — reaches the upstream's ``/chat/completions`` as a data URL;
a text-only request still goes to ``/completions`` with the prompt rendered here.

And the llamacpp engine: a GGUF with its projector (``mmproj``) reads images itself, through llama.cpp's
multimodal library — tested on the tiny random text model and a tiny random projector generated at test time."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from zhipuai import ZhipuAI

from ..fixtures.cores import TEST_THREADS
from ..fixtures.image_server import png
from ..fixtures.tiny_mmproj import N_PATCHES, write_tiny_mmproj
from ..fixtures.tiny_model import N_EMBD
from ..fixtures.vision_upstream import SEEN, TEXT, VisionUpstream
from .conftest import write_catalog
from .server import RunningServer

PICTURE = base64.b64encode(png(4, 4)).decode()


@pytest.fixture(scope="module")
def vision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, VisionUpstream]]:
    home = tmp_path_factory.mktemp("vision")
    upstream = VisionUpstream()
    catalog = f"""
[[models]]
id = "glm-4v"
engine = "remote"
source = "{upstream.url}/v1"
template = "chatml"
vision = true
[models.options]
remote_model = "THUDM/glm-4v-9b"
"""
    env = {"OPENGLM_HTTP_TOOLS_ALLOW": "127.0.0.1"}  # image URLs on loopback are refused unless allowed
    server = RunningServer(models_file=write_catalog(home / "models.toml", catalog), log=home / "s.log", env=env)
    yield server, upstream
    server.stop()
    upstream.stop()


def ask(image: str) -> list[dict[str, object]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What do you see?"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]


def last_image(upstream: VisionUpstream) -> str:
    body = upstream.posted("/chat/completions")[-1]
    assert body["model"] == "THUDM/glm-4v-9b"
    [part] = [p for p in body["messages"][-1]["content"] if p["type"] == "image_url"]
    return str(part["image_url"]["url"])


def test_images_reach_the_upstream_as_data_urls(vision: tuple[RunningServer, VisionUpstream]) -> None:
    server, upstream = vision
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    data_url = f"data:image/png;base64,{PICTURE}"
    answer = client.chat.completions.create(model="glm-4v", messages=ask(data_url))  # type: ignore[arg-type]
    assert answer.choices[0].message.content == SEEN and answer.usage is not None
    assert answer.usage.prompt_tokens == 21  # the upstream's count: it read the image
    assert last_image(upstream) == data_url
    streamed = client.chat.completions.create(model="glm-4v", messages=ask(data_url), stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == SEEN

    zhipu = ZhipuAI(api_key="testid.testsecret", base_url=f"{server.url}/api/paas/v4", max_retries=0)
    reply = zhipu.chat.completions.create(model="glm-4v", messages=ask(data_url))  # the SDK sends base64 alone
    assert reply.choices[0].message.content == SEEN
    assert last_image(upstream) == data_url  # OpenGLM put the media type back from the image's first bytes


def test_an_image_by_url_is_fetched_here_not_by_the_upstream(vision: tuple[RunningServer, VisionUpstream]) -> None:
    server, upstream = vision
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    before = len(upstream.requests)
    answer = client.chat.completions.create(model="glm-4v", messages=ask(f"{upstream.url}/pixel.png"))  # type: ignore[arg-type]
    assert answer.choices[0].message.content == SEEN
    assert ("GET", "/pixel.png", {}) in upstream.requests[before:]  # OpenGLM's safe fetcher fetched it
    assert last_image(upstream) == f"data:image/png;base64,{PICTURE}"
    with pytest.raises(openai.BadRequestError, match="answered 404"):
        client.chat.completions.create(model="glm-4v", messages=ask(f"{upstream.url}/missing.png"))  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="base64"):
        client.chat.completions.create(model="glm-4v", messages=ask("not an image at all!"))  # type: ignore[arg-type]


def test_text_only_requests_keep_the_prompt_path(vision: tuple[RunningServer, VisionUpstream]) -> None:
    server, upstream = vision
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)
    answer = client.chat.completions.create(model="glm-4v", messages=[{"role": "user", "content": "Hello"}])
    assert answer.choices[0].message.content == TEXT
    assert "Hello" in upstream.posted("/completions")[-1]["prompt"]  # rendered here, with the catalog's template


# -- the llamacpp engine: a text GGUF and its projector (both tiny, random, generated here) ---------------------------

RED = base64.b64encode(png(40, 40, (220, 30, 30))).decode()
BLUE = base64.b64encode(png(40, 40, (30, 30, 220))).decode()
GREEDY: dict[str, Any] = {"temperature": 0, "max_tokens": 8, "logit_bias": {"0": -100, "2": -100}}


@pytest.fixture(scope="module")
def seeing(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("seeing")
    mmproj = write_tiny_mmproj(home / "mmproj.gguf", projection=N_EMBD)
    catalog = f"""
[[models]]
id = "tiny-vl"
source = "{tiny_gguf}"
mmproj = "{mmproj}"
template = "chatml"
context_length = 1024
[models.options]
threads = {TEST_THREADS}
parallel = 4

[[agents]]
id = "tiny-agent"
model = "tiny-vl"
"""
    server = RunningServer(models_file=write_catalog(home / "models.toml", catalog), log=home / "s.log")
    yield server
    server.stop()


def test_a_llamacpp_model_reads_images_with_its_projector(seeing: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="sk-test", max_retries=0)

    def answer(*images: str, **extra: Any) -> Any:
        parts = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{i}"}} for i in images]
        messages = [{"role": "user", "content": [*parts, {"type": "text", "text": "What colour is it?"}]}]
        return client.chat.completions.create(model="tiny-vl", messages=messages, logprobs=True, **GREEDY, **extra)  # type: ignore[call-overload]

    red, blue, both = answer(RED), answer(BLUE), answer(RED, BLUE)
    assert red.usage.prompt_tokens == blue.usage.prompt_tokens
    assert both.usage.prompt_tokens == red.usage.prompt_tokens + N_PATCHES  # an image is its 4 embeddings
    logprobs = [[t.logprob for t in a.choices[0].logprobs.content] for a in (red, blue)]
    assert logprobs[0] != logprobs[1]  # the model read each image

    streamed = client.chat.completions.create(
        model="tiny-vl",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{RED}"}},
                    {"type": "text", "text": "What colour is it?"},
                ],
            }
        ],
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,  # type: ignore[arg-type]
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == red.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == red.usage.prompt_tokens

    zhipu = ZhipuAI(api_key="testid.testsecret", base_url=f"{seeing.url}/api/paas/v4", max_retries=0)
    reply = zhipu.chat.completions.create(  # the SDK sends the base64 alone
        model="tiny-vl",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": RED}},
                    {"type": "text", "text": "What colour is it?"},
                ],
            }
        ],
        temperature=0.01,
        max_tokens=8,
    )
    assert reply.usage.prompt_tokens == red.usage.prompt_tokens


def test_images_and_tools_together_on_a_llamacpp_model(seeing: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="sk-test", max_retries=0)
    tool = {
        "type": "function",
        "function": {
            "name": "name_colour",
            "parameters": {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]},
        },
    }
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{BLUE}"}},
                {"type": "text", "text": "Name the colour."},
            ],
        }
    ]
    forced = {"type": "function", "function": {"name": "name_colour"}}
    answer = client.chat.completions.create(
        model="tiny-vl",
        messages=messages,
        tools=[tool],
        tool_choice=forced,
        temperature=0,
        max_tokens=40,  # type: ignore[arg-type]
    )
    [call] = answer.choices[0].message.tool_calls or []
    # The call the grammar forced, in its schema's shape (a random model fills the string until max_tokens).
    assert call.function.name == "name_colour" and call.function.arguments.replace(" ", "").startswith('{"colour":"')


def test_an_image_the_projector_cannot_read_is_a_400(seeing: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="sk-test", max_retries=0)
    # A PNG whose header says 40×40 (it passes the size check) and whose pixel data is not deflate: only decoding fails.
    header = png(40, 40)[:33]  # signature and IHDR
    broken = base64.b64encode(header + b"\x00\x00\x00\x04IDATjunk\x00\x00\x00\x00").decode()
    content = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{broken}"}},
        {"type": "text", "text": "?"},
    ]
    with pytest.raises(openai.BadRequestError, match="not an image this model can read"):
        client.chat.completions.create(model="tiny-vl", messages=[{"role": "user", "content": content}])  # type: ignore[misc,list-item]


def test_an_agent_whose_model_sees_reads_the_image_itself(seeing: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{seeing.url}/v1", api_key="sk-test", max_retries=0)

    def ask_agent(content: Any) -> Any:
        messages = [{"role": "user", "content": content}]
        stream = client.chat.completions.create(
            model="tiny-agent", messages=messages, max_tokens=8, temperature=0, stream=True
        )
        return [chunk for chunk in stream if chunk.usage is not None][-1]

    text = {"type": "text", "text": "What colour is it?"}
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{RED}"}}
    seen, unseen = ask_agent([image, text]), ask_agent([text])
    # The image's 4 embeddings are in the agent's prompt: not an "[image 1]" marker and a look_at_image tool.
    assert abs(seen.usage.prompt_tokens - unseen.usage.prompt_tokens - N_PATCHES) <= 2


def test_the_tokenizer_says_it_counts_text_only_for_images(seeing: RunningServer) -> None:
    content = [{"type": "image_url", "image_url": {"url": RED}}, {"type": "text", "text": "What colour is it?"}]
    body = {"model": "tiny-vl", "messages": [{"role": "user", "content": content}]}
    refused = httpx.post(f"{seeing.url}/api/paas/v4/tokenizer", json=body, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1212"
    text = {"model": "tiny-vl", "messages": [{"role": "user", "content": "What colour is it?"}]}
    assert httpx.post(f"{seeing.url}/api/paas/v4/tokenizer", json=text, timeout=30).json()["usage"]["prompt_tokens"] > 0
