"""What ``/models`` lists: the catalog's chat models and their aliases, its All Tools agents, its embedding models,
and the caller's fine-tuned models, each as a ``ModelCard`` with a real ``created`` time.

``created`` (Unix seconds) is when the model came to be here: a local weights file's modification time (when it
was written or installed), a fine-tuned model's creation; for what has no file of its own (a remote engine's
model, an agent, an embedding model served by URL) the catalog file's, which is when the operator last wrote the
entry down."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..accounts.auth import Principal
from ..catalog import Catalog, ModelSpec, resolve_source
from ..embeddings.service import EmbeddingService
from ..errors import ModelNotFoundError, PermissionDeniedError
from ..protocol.chat import ModelCard, ModelList
from ..serving.models import ModelPool
from ..tuning.finetuned import FineTunedRecord, is_fine_tuned_name
from ..tuning.service import FineTuningService


class ModelDirectory:
    def __init__(self, pool: ModelPool, embeddings: EmbeddingService, fine_tuning: FineTuningService):
        self.pool = pool
        self.embeddings = embeddings
        self.fine_tuning = fine_tuning
        self._started = int(time.time())

    async def every(self, principal: Principal) -> ModelList:
        cards = self._catalog_cards(self.fine_tuning.fine_tunable)
        cards += [self._embedding_card(name) for name in self.embeddings.models]
        cards += [self._fine_tuned_card(r) for r in await self.fine_tuning.models_of(principal.account_id)]
        return ModelList(data=cards)

    async def card(self, principal: Principal, name: str) -> ModelCard:
        if is_fine_tuned_name(name):
            return self._fine_tuned_card(await self.fine_tuning.model(principal.account_id, name))
        try:
            self.pool.get(name)  # served here (not only in the catalog), else 1211
        except ModelNotFoundError:
            if name not in self.embeddings.models:
                raise
            return self._embedding_card(name)
        base = self.pool.catalog.lookup(name)  # a variant's card shows its model's entry
        variant = name in self.pool.catalog.variants
        return self._chat_card(name, base, not variant and self.fine_tuning.fine_tunable(base.id))

    async def delete(self, principal: Principal, name: str) -> FineTunedRecord:
        """Only fine-tuned models are deleted (OpenAI's ``models.delete``); a catalog model is refused."""
        if not is_fine_tuned_name(name):
            self.pool.get(name)  # 1211 for a name that is no model at all
            raise PermissionDeniedError(
                f"model {name!r} is in the server's catalog; only fine-tuned models are deleted"
            )
        return await self.fine_tuning.delete_model(principal, name)

    def _catalog_cards(self, fine_tunable: Callable[[str], bool]) -> list[ModelCard]:
        cards = []
        for served in self.pool.served():
            spec = served.spec
            cards += [self._chat_card(name, spec, fine_tunable(spec.id)) for name in (spec.id, *spec.aliases)]
            cards += [self._chat_card(variant.id, spec, False) for variant in spec.variants]
        loaded = {served.spec.id for served in self.pool.served()}
        catalog = self.pool.catalog
        for agent in catalog.agents.values():  # All Tools agents are called like models
            model = catalog.lookup(agent.model)
            if model.id in loaded:
                created = self._catalog_time(catalog)
                cards.append(
                    ModelCard(
                        id=agent.id,
                        created=created,
                        owned_by="openglm",
                        root=model.id,
                        context_length=model.context_length,
                        kind="agent",
                    )
                )
        return cards

    def _chat_card(self, name: str, spec: ModelSpec, fine_tunable: bool) -> ModelCard:
        return ModelCard(
            id=name,
            created=self._created(spec.source, spec.engine == "remote"),
            owned_by=spec.owned_by,
            root=spec.id,
            context_length=spec.context_length,
            kind="chat",
            fine_tunable=fine_tunable,
        )

    def _embedding_card(self, name: str) -> ModelCard:
        """``context_length`` of an embedding model: its tokens per input (0 where only the model knows)."""
        spec = self.embeddings.resolve(name)
        return ModelCard(
            id=name,
            created=self._created(spec.source, spec.engine == "remote"),
            owned_by=spec.owned_by,
            root=spec.id,
            context_length=spec.max_input_tokens or 0,
            kind="embedding",
        )

    def _fine_tuned_card(self, record: FineTunedRecord) -> ModelCard:
        """A fine-tuned model: listed to its account only, ``owned_by`` the account, ``root`` its base."""
        catalog = self.pool.catalog
        base = catalog.lookup(record.base_model) if record.base_model in catalog.names() else None
        return ModelCard(
            id=record.id,
            created=int(record.created_at.timestamp()),
            owned_by=record.owned_by,
            root=record.base_model,
            context_length=base.context_length if base is not None else 0,
            kind="chat",
            fine_tunable=self.fine_tuning.continuable(record),  # a job trains its adapter further, on its base
        )

    def _created(self, source: str, remote: bool) -> int:
        if not remote:
            try:
                return int(Path(resolve_source(source)).stat().st_mtime)
            except (OSError, ValueError):
                pass
        return self._catalog_time(self.pool.catalog)

    def _catalog_time(self, catalog: Catalog) -> int:
        if catalog.path is not None:
            try:
                return int(catalog.path.stat().st_mtime)
            except OSError:
                pass
        return self._started
