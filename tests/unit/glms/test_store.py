"""GLMs in the database (SQLite and PostgreSQL): versions, visibility, the agent center."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from openglm.errors import InvalidRequestError, NotFoundError, StorageQuotaError
from openglm.files.quota import StorageQuota
from openglm.glms.store import AgentStore
from openglm.protocol.glms import AgentConfig
from openglm.store.db import Database
from openglm.store.models import Account

CONFIG = AgentConfig(instructions="You are a poet.", model="default", tools=["web_browser"])


@pytest.fixture
async def store(database: Database) -> AgentStore:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    return AgentStore(database)


async def test_a_changed_configuration_is_a_new_version_and_old_ones_stay(store: AgentStore) -> None:
    agent = await store.create("acct_a", CONFIG, name="Poet", description="writes poems")
    assert agent.version == 1 and agent.config == CONFIG
    edited = await store.update("acct_a", agent.id, CONFIG.model_copy(update={"instructions": "Haiku only."}))
    renamed = await store.update("acct_a", agent.id, None, name="Haiku poet")  # details only: no version
    same = await store.update("acct_a", agent.id, edited.config, description="haiku")  # the same config: none
    assert (edited.version, renamed.version, same.version) == (2, 2, 2)
    assert same.config.instructions == "Haiku only." and same.name == "Haiku poet" and same.description == "haiku"
    assert [v.version for v in await store.versions("acct_a", agent.id)] == [2, 1]
    assert (await store.get("acct_a", agent.id, version=1)).config.instructions == "You are a poet."


async def test_concurrent_edits_both_land(store: AgentStore) -> None:
    agent = await store.create("acct_a", CONFIG, name="Poet")
    configs = [CONFIG.model_copy(update={"instructions": f"Style {i}."}) for i in range(4)]
    await asyncio.gather(
        *(store.update("acct_a", agent.id, config, description=f"d{i}") for i, config in enumerate(configs))
    )
    assert (await store.get("acct_a", agent.id)).version == 5
    await asyncio.gather(*(store.update("acct_a", agent.id, None, description=f"e{i}") for i in range(4)))
    assert (await store.get("acct_a", agent.id)).version == 5


def size(config: AgentConfig) -> int:
    return len(config.model_dump_json().encode())


async def test_only_the_newest_versions_are_kept_and_their_bytes_counted(database: Database) -> None:
    """Each version's configuration counts against the account's storage; versions past the newest ``kept`` are
    removed and give their bytes back, and a conversation pinned to one of them goes on with the current version."""
    async with database.session() as session:
        session.add(Account(id="acct_v", name="v"))
    store = AgentStore(database, StorageQuota(database, None), versions_kept=3)
    configs = [CONFIG.model_copy(update={"instructions": "é" * n}) for n in range(1, 7)]  # UTF-8: 2 bytes each
    agent = await store.create("acct_v", configs[0], name="Versions")
    for config in configs[1:]:
        await store.update("acct_v", agent.id, config)
    assert [v.version for v in await store.versions("acct_v", agent.id)] == [6, 5, 4]
    assert (await store.quota.usage("acct_v")).used_bytes == sum(size(c) for c in configs[3:])
    assert (await store.pinned("acct_v", agent.id, 1)).version == 6  # removed: the current one
    assert (await store.pinned("acct_v", agent.id, 4)).config.instructions == configs[3].instructions
    await store.delete("acct_v", agent.id)
    assert (await store.quota.usage("acct_v")).used_bytes == 0


async def test_configurations_are_refused_past_the_storage_quota(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_q", name="q"))
    store = AgentStore(database, StorageQuota(database, 2 * size(CONFIG) + 10))
    agent = await store.create("acct_q", CONFIG, name="First")
    await store.create("acct_q", CONFIG, name="Second")
    with pytest.raises(StorageQuotaError, match="this GLM's configuration needs"):
        await store.create("acct_q", CONFIG, name="Third")
    with pytest.raises(StorageQuotaError, match="this GLM version's configuration needs"):
        await store.update("acct_q", agent.id, CONFIG.model_copy(update={"instructions": "Longer instructions."}))
    assert (await store.get("acct_q", agent.id)).version == 1
    assert (await store.mine("acct_q", 1, 10))[1] == 2
    assert (await store.quota.usage("acct_q")).used_bytes == 2 * size(CONFIG)


async def test_an_account_keeps_at_most_its_number_of_glms_even_when_created_at_once(database: Database) -> None:
    async with database.session() as session:
        session.add(Account(id="acct_n", name="n"))
    store = AgentStore(database, max_agents=3)
    results = await asyncio.gather(
        *(store.create("acct_n", CONFIG, name=f"G{i}") for i in range(8)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(results) - len(refused) == 3 and (await store.mine("acct_n", 1, 10))[1] == 3
    assert all(isinstance(r, InvalidRequestError) and "the most it may keep" in r.message for r in refused)
    assert (await store.quota.usage("acct_n")).used_bytes == 3 * size(CONFIG)


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
