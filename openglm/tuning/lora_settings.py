"""LoRA's settings as a job states them (OpenGLM's extension of the hyperparameters: ``lora_rank``, ``lora_alpha``,
``lora_dropout``, ``lora_target_modules``), their bounds, and the size of the adapter they make — without torch, so
the API process can check a job before it exists.

Target modules are named as Hugging Face names the projections (``q_proj`` … ``down_proj``); ``TARGETS`` maps each to
its llama.cpp tensor (``blk.N.<name>.weight``), which is how the adapter GGUF names it and how the base's GGUF gives
the shapes an adapter's size follows from: rank × (in + out) values per adapted matrix, F16.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidFieldError

# Hugging Face projection name -> llama.cpp tensor name (blk.N.<name>.weight).
TARGETS: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
DEFAULT_RANK = 8
DEFAULT_ALPHA = 16.0
# No dropout by default: fine-tuning sets are small (a few lines teaching a fact), and dropout on so few examples
# slows what they teach (test_training.py's 6 steps need it off).
DEFAULT_DROPOUT = 0.0
MAX_RANK = 256
MAX_ALPHA = 1024.0
MAX_DROPOUT = 1.0  # exclusive
BYTES_PER_VALUE = 2  # the adapter GGUF stores F16 (``export.py``)
# What a GGUF adds around the tensors: the header and metadata, and per tensor its name, shape and alignment.
GGUF_HEADER_BYTES = 1024
GGUF_BYTES_PER_TENSOR = 128


Shapes = dict[tuple[int, str], tuple[int, int]]  # (layer, llama.cpp target name) -> (in, out)


@dataclass(frozen=True)
class LoRASettings:
    rank: int = DEFAULT_RANK
    alpha: float = DEFAULT_ALPHA
    dropout: float = DEFAULT_DROPOUT
    targets: tuple[str, ...] = tuple(TARGETS)


def resolve_lora(rank: Any, alpha: Any, dropout: Any, targets: Any) -> LoRASettings:
    """The job's LoRA settings from what the client sent (None or "auto": the default), each checked against its
    bounds with a message that names the field (1214)."""
    settings = LoRASettings()
    if rank not in (None, "auto"):
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
            raise InvalidFieldError(f'hyperparameters.lora_rank must be an integer from 1 to {MAX_RANK}, or "auto"')
        settings = LoRASettings(rank, float(2 * rank), settings.dropout, settings.targets)  # alpha follows: 2 × rank
    if alpha not in (None, "auto"):
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= MAX_ALPHA:
            raise InvalidFieldError(f'hyperparameters.lora_alpha must be above 0 and at most {MAX_ALPHA:g}, or "auto"')
        settings = LoRASettings(settings.rank, float(alpha), settings.dropout, settings.targets)
    if dropout not in (None, "auto"):
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < MAX_DROPOUT:
            raise InvalidFieldError('hyperparameters.lora_dropout must be at least 0 and below 1, or "auto"')
        settings = LoRASettings(settings.rank, settings.alpha, float(dropout), settings.targets)
    if targets not in (None, "auto"):
        settings = LoRASettings(settings.rank, settings.alpha, settings.dropout, _targets(targets))
    return settings


def _targets(given: Any) -> tuple[str, ...]:
    known = ", ".join(TARGETS)
    if not isinstance(given, list) or not given or not all(isinstance(name, str) for name in given):
        raise InvalidFieldError(f'hyperparameters.lora_target_modules must be a non-empty list of {known}, or "auto"')
    unknown = [name for name in given if name not in TARGETS]
    if unknown:
        raise InvalidFieldError(
            f"hyperparameters.lora_target_modules: {', '.join(map(repr, unknown))} is not a module LoRA can adapt "
            f"here; choose from {known}"
        )
    return tuple(name for name in TARGETS if name in given)  # distinct, in the model's order


def adapter_bytes(gguf_path: str, settings: LoRASettings) -> int | None:
    """The size of the adapter GGUF these settings make for the base in ``gguf_path`` (within a few hundred bytes),
    or None when the file is not a GGUF with llama.cpp's tensor names. Reads the file's header once per file (its
    vocabulary makes that take a second or two)."""
    shapes = matrix_shapes(gguf_path)
    if shapes is None:
        return None
    wanted = {TARGETS[name] for name in settings.targets}
    chosen = [(n_in, n_out) for (_, target), (n_in, n_out) in shapes.items() if target in wanted]
    values = sum(settings.rank * (n_in + n_out) for n_in, n_out in chosen)
    return values * BYTES_PER_VALUE + 2 * len(chosen) * GGUF_BYTES_PER_TENSOR + GGUF_HEADER_BYTES


def matrix_shapes(gguf_path: str) -> dict[tuple[int, str], tuple[int, int]] | None:
    """(layer, llama.cpp target name) → (in, out) of every matrix a LoRA can adapt in the GGUF, or None when there
    is none (not a GGUF, or not one with llama.cpp's names)."""
    try:
        stat = os.stat(gguf_path)
    except OSError:
        return None
    return _gguf_facts(gguf_path, stat.st_size, stat.st_mtime_ns)[1]


def gguf_architecture(gguf_path: str) -> str | None:
    """The GGUF's ``general.architecture`` (None: not a GGUF), read with its shapes (one read, cached)."""
    try:
        stat = os.stat(gguf_path)
    except OSError:
        return None
    return _gguf_facts(gguf_path, stat.st_size, stat.st_mtime_ns)[0]


@functools.lru_cache(maxsize=16)
def _gguf_facts(path: str, size: int, mtime_ns: int) -> tuple[str | None, Shapes | None]:
    """The architecture and the adaptable matrices' shapes. ``size`` and ``mtime_ns`` key the cache: a replaced
    file is read again."""
    try:
        import gguf

        reader = gguf.GGUFReader(path)
    except Exception:  # not a GGUF (or not one this gguf package reads): no estimate
        return None, None
    wanted = set(TARGETS.values())
    shapes: dict[tuple[int, str], tuple[int, int]] = {}
    for tensor in reader.tensors:
        parts = tensor.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in wanted and parts[3] == "weight":
            n_in, n_out = (int(d) for d in tensor.shape[:2])  # ggml's order: the input dimension first
            shapes[(int(parts[1]), parts[2])] = (n_in, n_out)
    return _architecture(reader), shapes or None


def adapter_settings(adapter_path: str | os.PathLike[str]) -> LoRASettings:
    """The shape of a llama.cpp LoRA adapter GGUF (what a job that continues it must keep): its rank (from the
    tensors), ``adapter.lora.alpha`` and the targets it adapts. ValueError when the file is not such an adapter, or
    its tensors disagree on the rank."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(adapter_path))
    except Exception as exc:
        raise ValueError(f"not a GGUF file ({exc})") from None
    field = reader.get_field("adapter.lora.alpha")
    kind = reader.get_field("adapter.type")
    if field is None or kind is None or bytes(kind.parts[kind.data[0]]).decode() != "lora":
        raise ValueError("not a llama.cpp LoRA adapter (no adapter.type = lora and adapter.lora.alpha)")
    alpha = float(field.parts[field.data[0]][0])
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"its adapter.lora.alpha is {alpha}; it must be a number above 0")
    by_target = {target: name for name, target in TARGETS.items()}
    ranks: set[int] = set()
    targets: set[str] = set()
    for tensor in reader.tensors:
        parts = tensor.name.split(".")
        if (
            len(parts) != 5
            or parts[0] != "blk"
            or not parts[1].isdigit()
            or parts[2] not in by_target
            or parts[3] != "weight"
            or parts[4] not in ("lora_a", "lora_b")
            or len(tensor.shape) != 2
        ):
            raise ValueError(f"tensor {tensor.name!r} is not a LoRA matrix of this platform's targets")
        targets.add(by_target[parts[2]])
        if parts[4] == "lora_a":
            ranks.add(int(tensor.shape[1]))  # ggml's order: (in, rank)
    if len(ranks) != 1:
        raise ValueError(f"the adapter's matrices have {'no' if not ranks else 'different'} ranks")
    return LoRASettings(rank=ranks.pop(), alpha=alpha, targets=tuple(name for name in TARGETS if name in targets))


def adapter_misfit(adapter_path: str | os.PathLike[str], base_gguf: str) -> str | None:
    """Why a LoRA adapter GGUF does not fit the base GGUF (None: it does, and llama.cpp will load it): its
    architecture must be the base's, every matrix one of the base's adaptable ones, in F16 or F32, with both A
    (ggml: in × rank) and B (rank × out) of the base's shapes at the adapter's one rank."""
    import gguf

    try:
        shape = adapter_settings(adapter_path)
        reader = gguf.GGUFReader(str(adapter_path))
    except ValueError as exc:
        return str(exc)
    shapes, base_architecture = matrix_shapes(base_gguf), gguf_architecture(base_gguf)
    if shapes is None or base_architecture is None:
        return "the base is not a GGUF model with llama.cpp's tensor names"
    if _architecture(reader) != base_architecture:
        return f"an adapter for {_architecture(reader)!r} models; the base is {base_architecture!r}"
    parts: dict[tuple[int, str], set[str]] = {}
    float_types = {gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32}
    for tensor in reader.tensors:
        _, layer, target, _, part = tensor.name.split(".")  # adapter_settings checked the names
        if (int(layer), target) not in shapes:
            return f"the base has no {layer}.{target} matrix for {tensor.name}"
        n_in, n_out = shapes[(int(layer), target)]
        expected = (n_in, shape.rank) if part == "lora_a" else (shape.rank, n_out)
        if tuple(int(d) for d in tensor.shape) != expected:
            return f"{tensor.name} is {list(tensor.shape)}; the base needs {list(expected)} (ggml's order)"
        if tensor.tensor_type not in float_types:
            return f"{tensor.name} is {tensor.tensor_type.name}; adapters are F16 or F32"
        parts.setdefault((int(layer), target), set()).add(part)
    half = next((f"blk.{k[0]}.{k[1]}" for k, found in parts.items() if found != {"lora_a", "lora_b"}), None)
    return f"{half} has only one of lora_a and lora_b" if half else None


def _architecture(reader: Any) -> str | None:
    field = reader.get_field("general.architecture")
    return None if field is None else bytes(field.parts[field.data[0]]).decode()
