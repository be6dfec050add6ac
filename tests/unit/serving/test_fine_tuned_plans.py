"""A fine-tuned model is served on its base: ``ModelPool.for_adapter`` gives the base's engine, template and parser
with the adapter, the chat and completion plans carry it on every generation, and the calls are metered under the
fine-tuned model's id at the base's prices. An engine that cannot apply adapters (the scripted one) refuses the
generation rather than answering with the base alone. (The llamacpp engine applying a real adapter is proved in
tests/integration/test_fine_tuning_real.py and tests/unit/engines.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from openglm.catalog import Catalog, ModelSpec, Prices
from openglm.config import Settings
from openglm.engines.base import AdapterRef
from openglm.errors import AdapterUnsupportedError
from openglm.protocol.chat import ChatCompletionRequest, CompletionRequest
from openglm.serving.completions import plan_completion
from openglm.serving.models import ModelPool
from openglm.serving.service import ChatService
from openglm.tuning.finetuned import AdapterTarget

FT = "ft:base-model:mine:0a1b2c3d"


@pytest.fixture
def pool() -> Iterator[ModelPool]:
    spec = ModelSpec(
        id="base-model",
        aliases=["base"],
        engine="scripted",
        source="-",
        prices=Prices(input=Decimal("0.5"), output=Decimal("2")),
        options={"script": [{"when": "", "reply": "the base's answer"}]},
    )
    models = ModelPool(Catalog([spec]), Settings(load_models=""))
    asyncio.run(models.start())
    yield models
    asyncio.run(models.stop())


def target(tmp_path: Path) -> AdapterTarget:
    return AdapterTarget(model=FT, base_model="base", adapter_path=tmp_path / "adapter-ftjob-1.gguf")


def test_for_adapter_is_the_base_engine_under_the_fine_tuned_name(pool: ModelPool, tmp_path: Path) -> None:
    base = pool.get("base-model")
    served = pool.for_adapter(target(tmp_path))
    assert served.engine is base.engine and served.template is base.template and served.parser is base.parser
    assert served.adapter == AdapterRef(key=FT, path=str(tmp_path / "adapter-ftjob-1.gguf"))
    assert served.spec.id == FT and served.spec.aliases == []  # metering records usage under this id
    assert served.spec.effective_prices() == base.spec.effective_prices()
    assert served.spec.context_length == base.spec.context_length
    assert base.adapter is None and base.spec.id == "base-model"  # the base itself is untouched


def test_chat_and_completion_plans_carry_the_adapter(pool: ModelPool, tmp_path: Path) -> None:
    service = ChatService(pool)
    chat = ChatCompletionRequest.model_validate({"model": FT, "messages": [{"role": "user", "content": "hi"}], "n": 2})
    plan = asyncio.run(service.plan(chat, target(tmp_path)))
    ref = AdapterRef(key=FT, path=str(tmp_path / "adapter-ftjob-1.gguf"))
    assert [g.adapter for g in plan.generations] == [ref, ref]
    assert plan.model == FT and plan.served.spec.id == FT  # the response names the model the client asked for
    base_plan = asyncio.run(service.plan(chat.model_copy(update={"model": "base"})))
    assert all(g.adapter is None for g in base_plan.generations)
    assert base_plan.generations[0].prompt == plan.generations[0].prompt  # the same template renders both

    served = pool.for_adapter(target(tmp_path))
    completion = CompletionRequest.model_validate({"model": FT, "prompt": ["a", "b"]})
    planned = asyncio.run(plan_completion(served, completion, service.grammars))
    assert [g.adapter for g in planned.generations] == [ref, ref] and planned.model == FT


def test_an_engine_without_adapters_refuses_instead_of_answering_as_the_base(pool: ModelPool, tmp_path: Path) -> None:
    service = ChatService(pool)
    chat = ChatCompletionRequest.model_validate({"model": FT, "messages": [{"role": "user", "content": "hi"}]})
    plan = asyncio.run(service.plan(chat, target(tmp_path)))
    with pytest.raises(AdapterUnsupportedError, match=FT):
        asyncio.run(service.submit(plan))
