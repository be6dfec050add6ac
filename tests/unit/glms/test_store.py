"""GLMs in the database (SQLite and PostgreSQL): versions, visibility, the agent center."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from openglm.errors import NotFoundError
from openglm.glms.config import AgentConfig
from openglm.glms.store import AgentStore
from openglm.store.db import Database
from openglm.store.models import Account

CONFIG = AgentConfig(instructions="You are a poet.", model="default", tools=["web_browser"])


@pytest.fixture
async def store(database: Database) -> AgentStore:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    return AgentStore(database)


async def test_every_edit_is_a_new_version_and_old_ones_stay(store: AgentStore) -> None:
    agent = await store.create("acct_a", CONFIG, name="Poet", description="writes poems")
    assert agent.version == 1 and agent.config == CONFIG
    edited = await store.update("acct_a", agent.id, CONFIG.model_copy(update={"instructions": "Haiku only."}))
    renamed = await store.update("acct_a", agent.id, None, name="Haiku poet")
    assert (edited.version, renamed.version) == (2, 3)
    assert renamed.config.instructions == "Haiku only." and renamed.name == "Haiku poet"
    assert [v.version for v in await store.versions("acct_a", agent.id)] == [3, 2, 1]
    assert (await store.get("acct_a", agent.id, version=1)).config.instructions == "You are a poet."


async def test_concurrent_edits_both_land(store: AgentStore) -> None:
    agent = await store.create("acct_a", CONFIG, name="Poet")
    await asyncio.gather(*(store.update("acct_a", agent.id, None, description=f"d{i}") for i in range(4)))
    assert (await store.get("acct_a", agent.id)).version == 5


async def test_visibility_decides_who_sees_and_only_the_owner_edits(store: AgentStore) -> None:
    agent = await store.create("acct_a", CONFIG, name="Secret")
    with pytest.raises(NotFoundError):
        await store.get("acct_b", agent.id)
    await store.update("acct_a", agent.id, None, visibility="link")
    assert (await store.get("acct_b", agent.id)).name == "Secret"
    with pytest.raises(NotFoundError):
        await store.update("acct_b", agent.id, None, name="Mine now")
    with pytest.raises(NotFoundError):
        await store.delete("acct_b", agent.id)
    assert (await store.center(None, 1, 10)) == ([], 0)  # shared by link is not listed


async def test_the_center_lists_recommended_then_most_used_and_searches(store: AgentStore) -> None:
    names = ["Translator", "Math tutor", "Travel planner", "Hidden"]
    agents = {
        n: await store.create("acct_a", CONFIG, name=n, description=f"a {n.lower()}", visibility="listed")
        for n in names
    }
    await store.update("acct_a", agents["Hidden"].id, None, visibility="private")
    for _ in range(3):
        await store.count_use(agents["Math tutor"].id)
    await store.count_use(agents["Translator"].id)
    await store.recommend(agents["Travel planner"].id, 1)
    listed, total = await store.center(None, 1, 10)
    assert [a.name for a in listed] == ["Travel planner", "Math tutor", "Translator"] and total == 3
    found, _ = await store.center("TRAVEL", 1, 10)
    assert [a.name for a in found] == ["Travel planner"]
    assert (await store.center("100%_", 1, 10)) == ([], 0)  # LIKE wildcards are literal


def test_configs_refuse_file_paths_and_unknown_tools() -> None:
    with pytest.raises(ValidationError):
        AgentConfig(model="m", http_apis=[{"openapi": "/etc/passwd"}])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        AgentConfig(model="m", tools=["shell"])  # type: ignore[list-item]
    assert AgentConfig(model="m", tools=["retrieval", "retrieval"]).tools == ["retrieval"]
