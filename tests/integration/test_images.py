"""Images through the real server: /images/generations with both SDKs, metered per image, and the drawing tool
with multi-turn editing, all against an OpenAI-compatible image server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from zhipuai import ZhipuAI

from ..fixtures.image_server import ImageServer
from ..fixtures.tiny_diffusers import write_tiny_pipeline
from .conftest import write_catalog
from .server import RunningServer
from .test_alltools import call, stream, user


def catalog(images: ImageServer) -> str:
    return f"""
[[models]]
id = "script-draw"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "the user can see them"
reply = "Here it is."
[[models.options.script]]
when = "drawn from: 'a red cat'"
reply = {call("cogview", {"prompt": "a red cat wearing a blue hat"})}
[[models.options.script]]
when = ""
reply = {call("cogview", {"prompt": "a red cat"})}

[[agents]]
id = "glm-4-alltools"
model = "script-draw"

[[images]]
id = "cogview-3"
engine = "openai"
source = "{images.url}"
[images.options]
api_key = "upstream-key"
"""


@pytest.fixture(scope="module")
def drawing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, ImageServer]]:
    images = ImageServer()
    tmp: Path = tmp_path_factory.mktemp("images")
    server = RunningServer(
        models_file=write_catalog(tmp / "models.toml", catalog(images)),
        log=tmp / "s.log",
        env={"OPENGLM_SANDBOX_WARM": "0"},
    )
    yield server, images
    server.stop()
    images.stop()


def test_images_endpoint_with_both_sdks_and_metering(drawing: tuple[RunningServer, ImageServer]) -> None:
    server, images = drawing
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    result = client.images.generate(model="cogview-3", prompt="a lighthouse", n=2, response_format="b64_json")
    assert len(result.data) == 2 and base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")
    assert images.requests[-1]["authorization"] == "Bearer upstream-key"
    zhipu = ZhipuAI(api_key="id.secret", base_url=f"{server.url}/api/paas/v4", max_retries=0)
    one = zhipu.images.generations(model="cogview-3", prompt="a harbour")
    assert "/v1/files/file-" in one.data[0].url and httpx.get(one.data[0].url).content.startswith(b"\x89PNG")
    usage = httpx.get(f"{server.url}/v1/account/usage", params={"by": "model"}).json()["data"]
    row = next(r for r in usage if r["group"] == "cogview-3")
    assert row["images"] == 3 and row["cost"] == "0.75"  # the seed price: 0.25 CNY per image


def test_images_endpoint_refuses_bad_input(drawing: tuple[RunningServer, ImageServer]) -> None:
    server, _ = drawing
    url = f"{server.url}/v1/images/generations"
    assert httpx.post(url, json={"model": "cogview-3", "prompt": ""}).status_code == 400
    assert httpx.post(url, json={"model": "cogview-3", "prompt": "x", "n": 9}).status_code == 400
    missing = httpx.post(url, json={"model": "dall-e-9", "prompt": "x"})
    assert missing.status_code == 400 and "cogview-3" in missing.json()["error"]["message"]


def test_drawing_tool_revises_the_last_prompt(drawing: tuple[RunningServer, ImageServer]) -> None:
    server, images = drawing
    first = stream(server, model="glm-4-alltools", messages=user("Draw a red cat"), tools=[{"type": "drawing_tool"}])
    conversation = first[-1]["conversation_id"]
    (outputs,) = [
        c["choices"][0]["delta"]["tool_calls"][0]["drawing_tool"]["outputs"]
        for c in first
        if c["choices"][0]["delta"].get("role") == "tool"
    ]
    assert httpx.get(outputs[0]["image"]).content.startswith(b"\x89PNG")  # served by the files API
    second = stream(
        server,
        model="glm-4-alltools",
        messages=user("Now give it a blue hat"),
        tools=[{"type": "drawing_tool"}],
        conversation_id=conversation,
    )
    assert images.prompts[-2:] == ["a red cat", "a red cat wearing a blue hat"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in second) == "Here it is."


def test_no_image_model_means_no_tool_and_a_clear_400(server: RunningServer) -> None:
    refused = httpx.post(f"{server.url}/v1/images/generations", json={"prompt": "x"})
    assert refused.status_code == 400 and "no image model" in refused.json()["error"]["message"]
    tool = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "glm-4-alltools", "stream": True, "messages": user("draw"), "tools": [{"type": "drawing_tool"}]},
    )
    assert tool.status_code == 400 and "drawing_tool" in tool.json()["error"]["message"]


@pytest.fixture(scope="module")
def diffusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp: Path = tmp_path_factory.mktemp("diffusers")
    pipeline = write_tiny_pipeline(tmp)
    entry = f"""
[[images]]
id = "local-sd"
engine = "diffusers"
source = "{pipeline}"
[images.prices]
image = 0.01
[images.options]
steps = 2

[[images]]
id = "gone"
engine = "diffusers"
source = "{tmp / "nowhere"}"
"""
    server = RunningServer(
        models_file=write_catalog(tmp / "models.toml", entry), log=tmp / "s.log", env={"OPENGLM_SANDBOX_WARM": "0"}
    )
    yield server
    server.stop()


def test_a_local_diffusers_pipeline_draws(diffusing: RunningServer) -> None:
    from PIL import Image

    client = openai.OpenAI(base_url=f"{diffusing.url}/v1", api_key="unused", max_retries=0)
    result = client.images.generate(
        model="local-sd", prompt="a lighthouse", n=2, size="64x64", response_format="b64_json"
    )
    pictures = [Image.open(io.BytesIO(base64.b64decode(item.b64_json or ""))) for item in result.data]
    assert [(p.format, p.size) for p in pictures] == [("PNG", (64, 64))] * 2
    zhipu = ZhipuAI(api_key="id.secret", base_url=f"{diffusing.url}/api/paas/v4", max_retries=0)
    one = zhipu.images.generations(model="local-sd", prompt="a harbour", size="96x64")
    assert Image.open(io.BytesIO(httpx.get(one.data[0].url).content)).size == (96, 64)
    usage = httpx.get(f"{diffusing.url}/v1/account/usage", params={"by": "model"}).json()["data"]
    assert next(r for r in usage if r["group"] == "local-sd")["images"] == 3


def test_a_diffusers_model_that_cannot_load_is_a_clear_error(diffusing: RunningServer) -> None:
    response = httpx.post(f"{diffusing.url}/v1/images/generations", json={"model": "gone", "prompt": "x"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "1260"
    assert "cannot load" in response.json()["error"]["message"]
    usage = httpx.get(f"{diffusing.url}/v1/account/usage", params={"by": "model"}).json()["data"]
    assert all(row["group"] != "gone" for row in usage)  # nothing delivered, nothing charged
