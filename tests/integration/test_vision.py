"""Vision through the real server with the unmodified SDKs: a catalog model with ``vision = true`` on the remote
engine, its upstream a second server (``fixtures/vision_upstream.py``) that records what it receives. An image —
as a data URL (openai), as bare base64 (zhipuai strips the prefix), or by URL, which OpenGLM fetches through its
safe fetcher so the upstream never sees the address — reaches the upstream's ``/chat/completions`` as a data URL;
a text-only request still goes to ``/completions`` with the prompt rendered here."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest
from zhipuai import ZhipuAI

from ..fixtures.image_server import png
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
