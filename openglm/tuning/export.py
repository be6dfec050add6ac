"""A trained LoRA written as a llama.cpp adapter GGUF (what ``convert_lora_to_gguf.py`` produces).

Metadata: ``general.architecture`` (the base's), ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``; tensors ``blk.N.<target>.weight.lora_a`` (r × in) and ``.lora_b`` (out × r). llama.cpp
applies ``scale · alpha / r · B A``.

Q and K: for llama-architecture models llama.cpp's converter reorders the rows of the Q and K projections from
Hugging Face's rotary layout (the two halves of each head's dimensions) to GGML's (interleaved pairs), per head
(per KV head for K). transformers' GGUF loader undoes that when it loads the base, so the torch model — and the
adapter trained on it — is in the Hugging Face layout: the rows of B (the output side) for ``attn_q`` and
``attn_k`` must be reordered the same way here, or the delta lands on the wrong rotary dimensions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .lora import LoRALinear, gguf_tensor_base, lora_modules

# GGUF architectures whose converter permutes Q/K rows and whose transformers loader undoes it (verified: llama).
PERMUTED_ARCHITECTURES = frozenset({"llama"})


def rotary_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows reordered per head from [first half | second half] to interleaved pairs (GGML's rotary layout)."""
    rows = weight.shape[0]
    per_head = rows // heads
    return weight.reshape(heads, 2, per_head // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def hugging_face_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """``rotary_rows`` undone: GGML's interleaved pairs back to each head's [first half | second half]."""
    rows = weight.shape[0]
    per_head = rows // heads
    return weight.reshape(heads, per_head // 2, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def export_adapter(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    architecture: str,
    dtype: Literal["f16", "f32"] = "f16",
    permute_qk: bool | None = None,
) -> Path:
    """Write the model's LoRA to ``path``. ``permute_qk``: None decides from the architecture."""
    import gguf

    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    if permute_qk is None:
        permute_qk = architecture in PERMUTED_ARCHITECTURES
    modules = lora_modules(model)
    if not modules:
        raise ValueError("the model carries no LoRA adapter")
    alphas = {m.scale * m.rank for m in modules.values()}
    if len(alphas) != 1:
        raise ValueError("every adapted module must share one alpha")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(partial), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alphas.pop()))
    numpy_type = np.float16 if dtype == "f16" else np.float32
    for name, module in modules.items():
        base = gguf_tensor_base(name)
        if base is None:
            raise ValueError(f"{name}: llama.cpp has no tensor name for this module")
        a = module.lora_a.detach().float()
        b = module.lora_b.detach().float()
        if permute_qk and base.endswith(".attn_q.weight"):
            b = rotary_rows(b, heads)
        elif permute_qk and base.endswith(".attn_k.weight"):
            b = rotary_rows(b, kv_heads)
        writer.add_tensor(f"{base}.lora_a", a.numpy().astype(numpy_type))
        writer.add_tensor(f"{base}.lora_b", b.numpy().astype(numpy_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out)
    return out


def read_adapter(
    model: nn.Module, path: str | os.PathLike[str], *, architecture: str, permute_qk: bool | None = None
) -> dict[str, torch.Tensor]:
    """An adapter GGUF (``export_adapter``'s, or llama.cpp's converter's) as the state ``lora.load_adapter_state``
    loads into ``model`` (fp32, the Hugging Face layout): what a job that continues a fine-tuned model starts from
    (``lora.start_from``, which refuses a shape that differs). ValueError for a tensor of a module the model
    lacks."""
    import gguf

    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    if permute_qk is None:
        permute_qk = architecture in PERMUTED_ARCHITECTURES
    modules: dict[str, str] = {}  # the GGUF's tensor base name -> the module's name
    for name, module in model.named_modules():
        base = gguf_tensor_base(name)
        if base is not None and isinstance(module, nn.Linear | LoRALinear):
            modules[base] = name
    state: dict[str, torch.Tensor] = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        base, _, part = tensor.name.rpartition(".")
        if base not in modules or part not in ("lora_a", "lora_b"):
            raise ValueError(f"the adapter's tensor {tensor.name!r} has no module in this model")
        value = torch.from_numpy(np.array(tensor.data, dtype=np.float32)).reshape(
            tuple(int(d) for d in reversed(tensor.shape))
        )
        if permute_qk and part == "lora_b" and base.endswith(".attn_q.weight"):
            value = hugging_face_rows(value, heads)
        elif permute_qk and part == "lora_b" and base.endswith(".attn_k.weight"):
            value = hugging_face_rows(value, kv_heads)
        state[f"{modules[base]}.{part}"] = value
    return state
