"""Loaded models: one engine, chat template and tool-call parser per catalog entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ..catalog import Catalog, CatalogError, ModelSpec, resolve_source
from ..config import Settings
from ..engines.base import AdapterRef, Engine, create_engine
from ..errors import ModelNotFoundError
from ..tuning.finetuned import AdapterTarget
from .merged import MergedEngines
from .templates.base import ChatTemplate, choose_template
from .toolcalls.base import ParserFactory, get_parser

log = logging.getLogger(__name__)
DEFAULT_NAME = "default"


@dataclass
class ServedModel:
    spec: ModelSpec
    engine: Engine
    template: ChatTemplate
    parser: ParserFactory
    # A fine-tuned model: the base's engine, template and parser, its generations run with this LoRA adapter, and
    # ``spec`` the base's entry under the fine-tuned model's id (usage is recorded under it, at the base's prices).
    adapter: AdapterRef | None = None


def choose_parser(setting: str, template: ChatTemplate) -> ParserFactory:
    if setting == "auto":
        setting = "glm4" if template.name == "glm4" else "hermes"
    return get_parser(setting)


class ModelPool:
    def __init__(self, catalog: Catalog, settings: Settings):
        self.catalog = catalog
        self.settings = settings
        self._served: dict[str, ServedModel] = {}
        self.merged: MergedEngines[ServedModel] = MergedEngines(settings.fine_tuning_merged_models, self._load_merged)

    async def start(self) -> None:
        wanted = self.settings.models_to_load()
        for spec in self.catalog.specs:
            if wanted and spec.id not in wanted:
                continue
            if spec.agent_adapter is not None:
                resolve_source(spec.agent_adapter)  # a missing adapter fails the start, not the first agent request
            engine = create_engine(spec, self.settings)
            if spec.vision and not (engine.takes_messages or engine.takes_images):
                raise CatalogError(
                    f"model {spec.id!r} is marked vision = true, but its {spec.engine} engine cannot take images "
                    "(a remote engine can: GLM-4V or Qwen-VL served by vLLM or SGLang; the llamacpp engine can "
                    "with the model's projector as mmproj)"
                )
            if spec.agent_tool_confidence > 0 and not engine.reports_logprobs:
                raise CatalogError(
                    f"model {spec.id!r} sets agent_tool_confidence, but its {spec.engine} engine does not report "
                    "logprobs, which the adapter's decision is judged by (the llamacpp and scripted engines do)"
                )
            await engine.start()
            template = choose_template(spec.template, engine.template_hints())
            self._served[spec.id] = ServedModel(spec, engine, template, choose_parser(spec.tool_parser, template))
            log.info("model %s ready (engine %s, template %s)", spec.id, spec.engine, template.name)

    async def stop(self) -> None:
        await self.merged.stop()
        for served in self._served.values():
            await served.engine.stop()
        self._served.clear()

    def get(self, name: str) -> ServedModel:
        spec = self.catalog.lookup(name)
        served = self._served.get(spec.id)
        if served is None:
            raise ModelNotFoundError(f"model {name!r} is in the catalog but not loaded on this server")
        variant = self.catalog.variants.get(name)
        return served if variant is None else replace(served, spec=variant)

    def agent_adapter(self, name: str) -> AdapterTarget | None:
        """The adapter All Tools agents on catalog model ``name`` plan with (its ``agent_adapter``), if any: served
        on the model's own engine under the key ``<id>+agent``, metered as the model itself."""
        spec = self.catalog.lookup(name)
        if spec.agent_adapter is None:
            return None
        return AdapterTarget(f"{spec.id}+agent", spec.id, Path(resolve_source(spec.agent_adapter)))

    def for_adapter(self, target: AdapterTarget) -> ServedModel:
        """A fine-tuned model served on its base: the base's engine (no second copy of the weights), template and
        tool-call parser, with the adapter every generation of its plans carries (``GenerationRequest.adapter``),
        and the base's catalog entry renamed to the fine-tuned model's id at the base's prices, so metering records
        the calls under the name the client used. An engine that cannot serve adapters refuses the generation
        (``AdapterUnsupportedError``, 400) rather than answering with the base alone."""
        base = self.get(target.base_model)
        spec = base.spec.model_copy(update={"id": target.model, "aliases": [], "prices": base.spec.effective_prices()})
        return replace(base, spec=spec, adapter=AdapterRef(key=target.model, path=str(target.adapter_path)))

    async def for_fine_tuned(self, target: AdapterTarget) -> ServedModel:
        """A fine-tuned model as it is served now: from its merged GGUF, an engine of its own loaded on the first
        request (``merged.py``), once it was merged; otherwise, or when no merged engine can be had, its adapter on
        the base (``for_adapter``)."""
        merged = await self.merged.get(target)
        return merged if merged is not None else self.for_adapter(target)

    async def _load_merged(self, target: AdapterTarget) -> tuple[ServedModel, Engine]:
        """An engine on the merged file: the base's catalog entry under the fine-tuned id, its file the merged one."""
        assert target.merged_path is not None
        base = self.get(target.base_model)
        spec = base.spec.model_copy(
            update={
                "id": target.model,
                "aliases": [],
                "prices": base.spec.effective_prices(),
                "source": str(target.merged_path),
            }
        )
        engine = create_engine(spec, self.settings)
        await engine.start()
        try:
            template = choose_template(spec.template, engine.template_hints())
            served = ServedModel(spec, engine, template, choose_parser(spec.tool_parser, template))
        except BaseException:
            await engine.stop()
            raise
        return served, engine

    def default_name(self) -> str:
        """The catalog's default chat model: the entry named ``default`` if there is one, else the first loaded."""
        if DEFAULT_NAME in self.catalog.names():
            return self.catalog.lookup(DEFAULT_NAME).id
        if not self._served:
            raise ModelNotFoundError("no chat model is loaded on this server")
        return next(iter(self._served))

    def served(self) -> list[ServedModel]:
        return list(self._served.values())
