"""A conversation pinned to an older GLM version: its instructions and tools, the current knowledge and APIs."""

from __future__ import annotations

from openglm.glms.config import pinned_against
from openglm.protocol.glms import AgentConfig, AgentHttpApi

DOCUMENT = '{"openapi": "3.0.0", "paths": {}}'


def test_a_pinned_version_keeps_only_the_knowledge_and_apis_still_attached() -> None:
    kept = AgentHttpApi(openapi=DOCUMENT, base_url="https://kept.example", auth={"token": "old"})
    gone = AgentHttpApi(openapi=DOCUMENT, base_url="https://gone.example", auth={"token": "secret"})
    old = AgentConfig(
        instructions="Old.",
        model="m1",
        tools=["retrieval", "drawing_tool"],
        knowledge_ids=["k1", "k2"],
        http_apis=[kept, gone],
        starter_prompts=["Hi?"],
    )
    rotated = kept.model_copy(update={"auth": {"token": "new"}})
    current = AgentConfig(instructions="New.", model="m2", knowledge_ids=["k2", "k3"], http_apis=[rotated])
    pinned = pinned_against(old, current)
    assert (pinned.instructions, pinned.model, pinned.tools) == ("Old.", "m1", ["retrieval", "drawing_tool"])
    assert pinned.starter_prompts == ["Hi?"]
    assert pinned.knowledge_ids == ["k2"]
    assert pinned.http_apis == [rotated]  # the current version's entry, with its current credentials


def test_retrieval_goes_when_none_of_its_knowledge_bases_remain() -> None:
    old = AgentConfig(model="m", tools=["retrieval", "web_browser"], knowledge_ids=["k1"])
    pinned = pinned_against(old, AgentConfig(model="m"))
    assert (pinned.tools, pinned.knowledge_ids, pinned.http_apis) == (["web_browser"], [], [])
