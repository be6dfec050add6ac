"""All Tools with an image, in process: the agent's model (scripted, it cannot see) reads ``[image 1]`` and calls
the ``vision`` tool, which asks the catalog's vision model (a remote engine on a recording upstream) about the
image; the answer comes back as the tool's output, the model answers from it, and both calls are billed."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ...fixtures.image_server import png
from ...fixtures.vision_upstream import SEEN, VisionUpstream
from .inprocess import InProcess, serving

LOOK = json.dumps({"name": "look_at_image", "arguments": {"image": 1, "question": "What is in the picture?"}})
PICTURE = f"data:image/png;base64,{base64.b64encode(png(4, 4)).decode()}"


@pytest.fixture
def upstream() -> Iterator[VisionUpstream]:
    running = VisionUpstream()
    yield running
    running.stop()


@pytest.fixture
async def platform(tmp_path: Path, upstream: VisionUpstream) -> AsyncIterator[InProcess]:
    catalog = f"""
[[models]]
id = "planner"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "{SEEN}"
reply = "The picture shows a small red square."
[[models.options.script]]
when = "[image 1"
reply = {json.dumps("<tool_call>" + chr(10) + LOOK + chr(10) + "</tool_call>")}
[[models.options.script]]
when = ""
reply = "No picture here."

[[models]]
id = "eye"
engine = "remote"
source = "{upstream.url}/v1"
template = "chatml"
vision = true

[[agents]]
id = "looker"
model = "planner"
"""
    async with serving(tmp_path, catalog) as running:
        yield running


async def test_an_agent_looks_at_the_user_s_image_through_the_vision_tool(
    platform: InProcess, upstream: VisionUpstream
) -> None:
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PICTURE}}],
    }
    events = await platform.events(
        "/api/paas/v4/chat/completions", {"model": "looker", "messages": [message], "stream": True}
    )
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert text == "The picture shows a small red square."
    outputs = [
        call["vision"]["outputs"]
        for e in events
        for call in e["choices"][0]["delta"].get("tool_calls") or []
        if e["choices"][0]["delta"].get("role") == "tool"
    ]
    assert outputs == [[{"image": 1, "answer": SEEN}]]
    [asked] = upstream.posted("/chat/completions")
    parts = asked["messages"][0]["content"]
    assert parts[0]["text"] == "What is in the picture?" and parts[1]["image_url"]["url"] == PICTURE
    models = sorted(r.model for r in await platform.usage())
    assert "eye" in models and "planner" in models  # the agent's rounds and the vision model's look, both billed
