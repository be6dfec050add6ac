"""A small LoRA for torch causal LMs: low-rank deltas on the attention and MLP projections.

``attach_lora`` wraps each target ``nn.Linear`` in a :class:`LoRALinear` (``y = W x + (alpha / r) · B A x``, A
Kaiming-initialised, B zero, so a fresh adapter changes nothing) and freezes every base weight. The adapter can be
switched off for the whole model (:func:`adapter_disabled`); DPO's reference (:func:`reference_model`) is the base
with the adapter off, or with the adapter a continued job started from (:func:`keep_as_reference`).
Shapes follow PEFT and llama.cpp: A is (r, in), B is (out, r).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .lora_settings import TARGETS  # Hugging Face projection name -> llama.cpp tensor name (blk.N.<name>.weight)

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = tuple(TARGETS)


class LoRALinear(nn.Module):  # type: ignore[misc]
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        # fp32 whatever the base's dtype: a bf16 base computes under autocast, the adapter and AdamW keep fp32.
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=torch.float32))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.enabled = True
        # A frozen copy of (A, B) the reference model applies (``as_reference``): the adapter a job continues.
        self.reference: tuple[torch.Tensor, torch.Tensor] | None = None
        self.as_reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x)
        if not self.enabled or (self.as_reference and self.reference is None):
            return out
        a, b = self.reference if self.as_reference and self.reference is not None else (self.lora_a, self.lora_b)
        if x.dtype != a.dtype and not torch.is_autocast_enabled("cpu"):
            a, b = a.to(x.dtype), b.to(x.dtype)
        # No dropout for the reference: it is a fixed model (DPO's reference is computed in train mode).
        delta = nn.functional.linear(nn.functional.linear(x if self.as_reference else self.dropout(x), a), b)
        return out + delta * self.scale


def attach_lora(model: nn.Module, config: LoRAConfig) -> dict[str, LoRALinear]:
    """Wrap the target projections of ``model`` in place; base weights are frozen. Returns the wrapped modules."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    wrapped: dict[str, LoRALinear] = {}
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf in config.targets and isinstance(module, nn.Linear):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            lora = LoRALinear(module, config.rank, config.alpha, config.dropout)
            setattr(parent, leaf, lora)
            wrapped[name] = lora
    if not wrapped:
        raise ValueError(f"no LoRA target ({', '.join(config.targets)}) found in the model")
    return wrapped


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in lora_modules(model).values() for p in (m.lora_a, m.lora_b)]


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights only (``<module>.lora_a`` / ``.lora_b``), detached copies."""
    state: dict[str, torch.Tensor] = {}
    for name, module in lora_modules(model).items():
        state[f"{name}.lora_a"] = module.lora_a.detach().clone()
        state[f"{name}.lora_b"] = module.lora_b.detach().clone()
    return state


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    modules = lora_modules(model)
    expected = {f"{name}.{part}" for name in modules for part in ("lora_a", "lora_b")}
    if set(state) != expected:
        raise ValueError("the adapter does not fit this model (different layers or targets)")
    with torch.no_grad():
        for key, value in state.items():
            name, part = key.rsplit(".", 1)
            getattr(modules[name], part).copy_(value)


def start_from(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load the adapter a continued job starts from (``export.read_adapter``'s state) into the fresh modules. It may
    adapt fewer layers than the job does (an adapter made elsewhere, trained on some layers only): the others keep
    their fresh start, B = 0, which changes nothing. ValueError for a module the model lacks or a shape that
    differs."""
    modules = lora_modules(model)
    with torch.no_grad():
        for key, value in state.items():
            name, _, part = key.rpartition(".")
            if name not in modules or part not in ("lora_a", "lora_b"):
                raise ValueError(f"the adapter's {key} has no LoRA module in this model")
            target = getattr(modules[name], part)
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(f"the adapter's {key} is {list(value.shape)}; this model's is {list(target.shape)}")
            target.copy_(value)


@contextmanager
def adapter_disabled(model: nn.Module) -> Iterator[None]:
    """The base model, for as long as the block runs (the DPO reference: no second copy of the weights)."""
    modules = list(lora_modules(model).values())
    previous = [m.enabled for m in modules]
    for m in modules:
        m.enabled = False
    try:
        yield
    finally:
        for m, was in zip(modules, previous, strict=True):
            m.enabled = was


def keep_as_reference(model: nn.Module) -> None:
    """The adapter as it is now becomes the reference model's (``reference_model``): a job that continues a
    fine-tuned model compares its DPO policy with that model, not with the bare base."""
    for module in lora_modules(model).values():
        module.reference = (module.lora_a.detach().clone(), module.lora_b.detach().clone())


@contextmanager
def reference_model(model: nn.Module) -> Iterator[None]:
    """DPO's reference, for as long as the block runs: the base with the adapter kept by ``keep_as_reference``, or
    the bare base when none was kept (the adapter off). No second copy of the base's weights either way."""
    modules = list(lora_modules(model).values())
    for m in modules:
        m.as_reference = True
    try:
        yield
    finally:
        for m in modules:
            m.as_reference = False


def gguf_tensor_base(module_name: str) -> str | None:
    """``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q.weight`` (None for modules llama.cpp has no name for)."""
    layer = _LAYER.search(module_name)
    target = TARGETS.get(module_name.rsplit(".", 1)[-1])
    if layer is None or target is None:
        return None
    return f"blk.{layer.group(1)}.{target}.weight"


def describe(model: nn.Module) -> dict[str, Any]:
    modules = lora_modules(model)
    return {
        "modules": len(modules),
        "trainable_parameters": sum(p.numel() for p in adapter_parameters(model)),
    }
