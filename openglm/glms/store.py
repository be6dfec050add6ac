"""GLMs in the database: every edit of the configuration is a new version; who may see an agent follows its
visibility. What an account keeps is bounded: at most ``max_agents`` GLMs, the newest ``versions_kept`` versions
of each (older ones are removed as edits add new ones), and every version's configuration counts against the
account's storage quota (``files/quota.py``), charged and given back in the transaction that writes or removes
the version row. An edit that leaves the configuration as it is (a new name, say) writes no version."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import InvalidRequestError, NotFoundError
from ..files.quota import StorageQuota
from ..protocol.glms import AgentConfig
from ..store.db import Database
from ..store.models import Agent, AgentVersion
from .config import pinned_against

LISTED = "listed"
EDIT_ATTEMPTS = 5
MAX_AGENTS = 100  # per account (OPENGLM_GLMS_PER_ACCOUNT)
VERSIONS_KEPT = 20  # per GLM (OPENGLM_GLM_VERSIONS_KEPT)


@dataclass(frozen=True)
class AgentRecord:
    id: str
    account_id: str
    name: str
    description: str
    avatar: str
    visibility: str
    recommended: int
    version: int
    uses: int
    config: AgentConfig
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionRecord:
    version: int
    config: AgentConfig
    created_at: datetime


def new_agent_id() -> str:
    """Zhipu's assistant ids look like 24 hex digits."""
    return secrets.token_hex(12)


class AgentStore:
    def __init__(
        self,
        db: Database,
        quota: StorageQuota | None = None,
        *,
        max_agents: int = MAX_AGENTS,
        versions_kept: int = VERSIONS_KEPT,
    ):
        self.db = db
        self.quota = quota or StorageQuota(db, None)  # None: configurations are counted, without a limit
        self.max_agents = max_agents
        self.versions_kept = versions_kept

    async def create(self, account_id: str, config: AgentConfig, **meta: Any) -> AgentRecord:
        now = datetime.now(UTC)
        agent = Agent(
            id=new_agent_id(), account_id=account_id, version=1, uses=0, recommended=0, created_at=now, updated_at=now
        )
        for key, value in meta.items():
            setattr(agent, key, value)
        text = config.model_dump_json()
        async with self.db.session() as session:
            # The charge comes first: it holds the account's storage row (PostgreSQL; SQLite has one writer), so
            # two creations cannot both pass a count that only one fits.
            await self.quota.charge(session, account_id, _size(text), "this GLM's configuration")
            owned = await session.scalar(select(func.count()).select_from(Agent).where(Agent.account_id == account_id))
            if int(owned or 0) >= self.max_agents:
                raise InvalidRequestError(
                    f"this account has {owned} GLMs, the most it may keep on this server ({self.max_agents}); "
                    "delete one first (DELETE /glms/{id})"
                )
            session.add(agent)
            await session.flush()
            session.add(AgentVersion(agent_id=agent.id, version=1, config=text, bytes=_size(text), created_at=now))
        return await self.get(account_id, agent.id)

    async def get(self, viewer_account: str | None, agent_id: str, version: int | None = None) -> AgentRecord:
        """The agent as ``viewer_account`` may see it: its own, or shared (by link or listed)."""
        async with self.db.read() as session:
            agent = await session.get(Agent, agent_id)
            if agent is None or (agent.account_id != viewer_account and agent.visibility == "private"):
                raise NotFoundError(f"agent {agent_id!r} does not exist")
            wanted = agent.version if version is None else version
            saved = await session.get(AgentVersion, (agent_id, wanted))
            if saved is None:
                raise NotFoundError(f"agent {agent_id!r} has no version {wanted}")
            return _record(agent, saved)

    async def pinned(self, viewer_account: str | None, agent_id: str, version: int | None) -> AgentRecord:
        """The agent as a conversation that started with ``version`` runs it: that version's configuration, but
        its knowledge bases and HTTP APIs only as far as the current version still has them
        (``glms/config.py: pinned_against``). ``None``, the current version, or one no longer kept (removed by later
        edits) is the current agent."""
        current = await self.get(viewer_account, agent_id)
        if version is None or version == current.version:
            return current
        try:
            old = await self.get(viewer_account, agent_id, version)
        except NotFoundError:
            return current
        return replace(old, config=pinned_against(old.config, current.config))

    async def owned(self, account_id: str, agent_id: str) -> AgentRecord:
        record = await self.get(account_id, agent_id)
        if record.account_id != account_id:
            raise NotFoundError(f"agent {agent_id!r} does not exist")  # shared with you, not yours to change
        return record

    async def mine(self, account_id: str, page: int, size: int) -> tuple[list[AgentRecord], int]:
        query = select(Agent).where(Agent.account_id == account_id).order_by(Agent.updated_at.desc(), Agent.id)
        return await self._page(query, page, size)

    async def center(self, search: str | None, page: int, size: int) -> tuple[list[AgentRecord], int]:
        """Listed agents: the operator's recommendations first (by their rank), then the most used."""
        query = select(Agent).where(Agent.visibility == LISTED)
        if search:
            pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(
                    func.lower(Agent.name).like(pattern, escape="\\"),
                    func.lower(Agent.description).like(pattern, escape="\\"),
                )
            )
        recommended_first = (Agent.recommended == 0).asc()
        query = query.order_by(recommended_first, Agent.recommended, Agent.uses.desc(), Agent.id)
        return await self._page(query, page, size)

    async def _page(self, query: Any, page: int, size: int) -> tuple[list[AgentRecord], int]:
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            agents = list(await session.scalars(query.offset((page - 1) * size).limit(size)))
            records = []
            for agent in agents:
                saved = await session.get(AgentVersion, (agent.id, agent.version))
                if saved is not None:
                    records.append(_record(agent, saved))
            return records, int(total or 0)

    async def update(self, account_id: str, agent_id: str, config: AgentConfig | None, **meta: Any) -> AgentRecord:
        """An edit: a new version holding a changed configuration; new details alone (or the same configuration)
        change the agent without a version. Two edits at once both land, one after the other (the second retries
        on the version the first took)."""
        for _ in range(EDIT_ATTEMPTS - 1):
            try:
                return await self._edit(account_id, agent_id, config, meta)
            except IntegrityError:
                continue
        return await self._edit(account_id, agent_id, config, meta)

    async def _edit(
        self, account_id: str, agent_id: str, config: AgentConfig | None, meta: dict[str, Any]
    ) -> AgentRecord:
        current = await self.owned(account_id, agent_id)
        now = datetime.now(UTC)
        text = None if config is None else config.model_dump_json()
        if text is None or text == current.config.model_dump_json():
            async with self.db.session() as session:
                await session.execute(update(Agent).where(Agent.id == agent_id).values(updated_at=now, **meta))
            return await self.get(account_id, agent_id)
        version = current.version + 1
        async with self.db.session() as session:
            await self.quota.charge(session, account_id, _size(text), "this GLM version's configuration")
            session.add(
                AgentVersion(agent_id=agent_id, version=version, config=text, bytes=_size(text), created_at=now)
            )
            moved = await session.execute(
                update(Agent)
                .where(Agent.id == agent_id, Agent.version == current.version)
                .values(version=version, updated_at=now, **meta)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]  # deleted meanwhile
                raise NotFoundError(f"agent {agent_id!r} does not exist")
            await self._remove_versions(
                session, account_id, agent_id, AgentVersion.version <= version - self.versions_kept
            )
        return await self.get(account_id, agent_id)

    async def _remove_versions(self, session: AsyncSession, account_id: str, agent_id: str, which: Any) -> None:
        """The agent's versions that match ``which`` removed, and their bytes given back to the account."""
        condition = (AgentVersion.agent_id == agent_id, which)
        freed = await session.scalar(select(func.coalesce(func.sum(AgentVersion.bytes), 0)).where(*condition))
        await session.execute(delete(AgentVersion).where(*condition))
        if freed:
            await self.quota.release(session, account_id, int(freed))

    async def versions(self, account_id: str, agent_id: str) -> list[VersionRecord]:
        await self.owned(account_id, agent_id)
        async with self.db.read() as session:
            rows = await session.scalars(
                select(AgentVersion).where(AgentVersion.agent_id == agent_id).order_by(AgentVersion.version.desc())
            )
            return [VersionRecord(r.version, AgentConfig.model_validate_json(r.config), r.created_at) for r in rows]

    async def delete(self, account_id: str, agent_id: str) -> None:
        await self.owned(account_id, agent_id)
        async with self.db.session() as session:
            await self._remove_versions(session, account_id, agent_id, True)
            await session.execute(delete(Agent).where(Agent.id == agent_id))

    async def recommend(self, agent_id: str, rank: int) -> None:
        """An operator's ranking in the agent center (0 removes it)."""
        async with self.db.session() as session:
            result = await session.execute(update(Agent).where(Agent.id == agent_id).values(recommended=rank))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError(f"agent {agent_id!r} does not exist")

    async def count_use(self, agent_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(update(Agent).where(Agent.id == agent_id).values(uses=Agent.uses + 1))


def _size(text: str) -> int:
    return len(text.encode())


def _record(agent: Agent, saved: AgentVersion) -> AgentRecord:
    return AgentRecord(
        id=agent.id,
        account_id=agent.account_id,
        name=agent.name,
        description=agent.description,
        avatar=agent.avatar,
        visibility=agent.visibility,
        recommended=agent.recommended,
        version=saved.version,
        uses=agent.uses,
        config=AgentConfig.model_validate_json(saved.config),
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )
