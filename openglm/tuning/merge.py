"""A LoRA adapter merged into its base: one full GGUF with ``W' = W + scale · alpha / r · B A`` in every adapted
tensor, F16 or requantized to the base's own tensor types.

    base GGUF ──┐  gguf's reader: metadata, tokenizer, tensors (mmapped)
                ├─▶ staging GGUF ──(llama_model_quantize: the base's types, tensor by tensor)──▶ merged GGUF
    adapter ────┘  A, B, alpha        adapted tensors dequantized and merged in float32, written float32;
                                      every other tensor copied byte for byte

Everything happens in the GGUF's own layout: the adapter's B rows for ``attn_q``/``attn_k`` are already in GGML's
rotary order (``export.py`` reorders them for llama.cpp), so the delta adds to the base's rows as they are stored.
The scale is llama.cpp's: ``scale · alpha / r`` with r the adapter's rank (``scale`` alone when alpha is 0), so the
merged model computes what the base with the adapter computes, up to rounding.

``auto`` (the default) is ``base`` for a base of 8-bit or finer types and ``q8_0`` otherwise: requantized to 4 or 5
bits, a trained LoRA's deltas — smaller than the quantization step — mostly round back onto the base's grid and the
fine-tune is lost (measured: ``benchmarks/bench_merge.py``). Quantization ``base`` requantizes with llama.cpp's own
quantizer: ``ftype`` the base's ``general.file_type``, and
an exact-name override per tensor to the base's type, token embeddings and output included, so the merged file has
the base's layout tensor for tensor (checked afterwards); tensors the adapter does not touch keep the base's bytes
(llama.cpp copies a tensor already of its target type), and a block of an adapted tensor that the delta leaves on
the base's grid requantizes to the base's bytes (the staging file holds ``W + delta`` in float32). ``q8_0`` makes
every matrix Q8_0 (1.5x the Q4_1 file, nearly F16's fidelity); ``f16`` writes every matrix as F16 (the base's
quantization undone, nothing requantized): the largest and closest to adapter-on-base. Memory stays at about one
tensor in float32 besides the mmapped files; the staging file lives next to the output and is removed (its size:
the untouched tensors as stored plus 4 bytes per parameter of the adapted ones — about 4.6x the Q4_1 base for a LoRA
on every projection).

This module is plain file work: no database, no job system. ``merge_gguf`` is what the merge job, the benchmark and
a command line call.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import gguf

Quantization = Literal["auto", "base", "q8_0", "f16"]
QUANTIZATIONS: tuple[Quantization, ...] = ("auto", "base", "q8_0", "f16")
# What ``auto`` keeps as the base's own: types fine enough to hold a LoRA's small deltas. Below 8 bits a merged
# delta mostly rounds back onto the base's grid (docs/benchmarks.md: a Q4_1 requantized merge of a trained adapter
# is as far from the fine-tune as the base alone), so ``auto`` makes those Q8_0.
KEEPS_DELTAS = ("F32", "F16", "BF16", "Q8_0")
# The type every matrix gets, and the file's llama_ftype, for the quantizations that are not the base's own.
UNIFORM = {"q8_0": ("Q8_0", 7), "f16": ("F16", 1)}
FLOAT_TYPES = ("F32", "F16", "BF16")
# GGML type -> the llama_ftype a base mostly of that type carries (llama.h), for a base without general.file_type.
FTYPE_OF_TYPE = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K": 12,
    "Q4_K": 15, "Q5_K": 17, "Q6_K": 18, "BF16": 32,
}  # fmt: skip
# Keys the writer sets itself (architecture, alignment) or the merge decides (file type).
SET_BY_WRITER = ("general.architecture", "general.alignment", "general.file_type")
_LORA = re.compile(r"^(?P<base>.+)\.lora_(?P<part>[ab])$")


class MergeError(ValueError):
    """The adapter does not fit the base, or a file is not what it should be (the message says which)."""


@dataclass(frozen=True)
class LoraPair:
    a: np.ndarray  # (r, in)
    b: np.ndarray  # (out, r)

    @property
    def rank(self) -> int:
        return int(self.b.shape[1])


@dataclass(frozen=True)
class Adapter:
    architecture: str
    alpha: float
    pairs: dict[str, LoraPair]  # base tensor name -> its low-rank factors

    def factor(self, name: str, scale: float) -> float:
        """llama.cpp's multiplier of ``B A`` for this tensor."""
        rank = self.pairs[name].rank
        return scale * self.alpha / rank if self.alpha else scale


@dataclass(frozen=True)
class MergeResult:
    path: Path
    file_type: str  # the merged file's tensor type for matrices: "Q4_1", "F16", ...
    merged_tensors: int
    size_bytes: int
    seconds: float


def read_adapter(path: str | os.PathLike[str]) -> Adapter:
    """A llama.cpp LoRA adapter GGUF (what ``export.py`` and ``convert_lora_to_gguf.py`` write)."""
    from gguf import GGUFReader, dequantize

    reader = GGUFReader(str(path))
    if _string(reader, "general.type") != "adapter" or _string(reader, "adapter.type") != "lora":
        raise MergeError("the adapter file is not a llama.cpp LoRA adapter (general.type adapter, adapter.type lora)")
    parts: dict[str, dict[str, np.ndarray]] = {}
    for tensor in reader.tensors:
        match = _LORA.match(tensor.name)
        if match is None:
            raise MergeError(f"adapter tensor {tensor.name}: not a LoRA factor (<tensor>.lora_a / .lora_b)")
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
        parts.setdefault(match["base"], {})[match["part"]] = values.reshape(_matrix_shape(tensor))
    pairs: dict[str, LoraPair] = {}
    for name, found in parts.items():
        if set(found) != {"a", "b"}:
            raise MergeError(f"adapter tensor {name}: lora_a and lora_b must come in pairs")
        a, b = found["a"], found["b"]
        if a.shape[0] != b.shape[1]:
            raise MergeError(f"adapter tensor {name}: lora_a is {a.shape}, lora_b {b.shape}: their ranks differ")
        pairs[name] = LoraPair(a, b)
    if not pairs:
        raise MergeError("the adapter has no LoRA tensors")
    alpha_field = reader.get_field("adapter.lora.alpha")
    alpha = float(alpha_field.contents()) if alpha_field is not None else 0.0
    return Adapter(_string(reader, "general.architecture") or "", alpha, pairs)


def merge_gguf(
    base: str | os.PathLike[str],
    adapter: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    quantization: Quantization = "auto",
    scale: float = 1.0,
    threads: int = 1,
) -> MergeResult:
    """Write ``out``: ``base`` with ``adapter`` merged in (atomically: a partial file never has the final name).
    ``quantization``: ``auto`` (the base's types if they are 8-bit or finer, else Q8_0), ``base``, ``q8_0``,
    ``f16``. ``threads``: llama.cpp's quantizer's."""
    from gguf import GGUFReader

    if quantization not in QUANTIZATIONS:
        raise MergeError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
    began = time.monotonic()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    lora = read_adapter(adapter)  # first: small, and refused early when it is not an adapter
    reader = GGUFReader(str(base))
    _check_fits(reader, lora)
    if quantization == "auto":
        quantization = "base" if _matrix_type(reader) in KEEPS_DELTAS else "q8_0"
    plan = {t.name: _target_type(t, quantization) for t in reader.tensors}
    staging = target.with_name(target.name + ".staging")
    partial = target.with_name(target.name + ".partial")
    try:
        _write_staging(reader, lora, plan, staging, scale, _ftype(reader, quantization))
        if any(not _is_float(kind) for kind in plan.values()):
            _quantize(reader, plan, quantization, staging, partial, threads)
            staging.unlink()
        else:
            os.replace(staging, partial)
        _check_types(partial, plan)
        os.replace(partial, target)
    finally:
        staging.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return MergeResult(
        path=target,
        file_type=Counter(plan[t.name] for t in reader.tensors if len(t.shape) >= 2).most_common(1)[0][0],
        merged_tensors=len(lora.pairs),
        size_bytes=target.stat().st_size,
        seconds=round(time.monotonic() - began, 3),
    )


# -- checks ----------------------------------------------------------------------------------------------------


def _check_fits(reader: gguf.GGUFReader, lora: Adapter) -> None:
    architecture = _string(reader, "general.architecture")
    if lora.architecture and lora.architecture != architecture:
        raise MergeError(f"the adapter is for {lora.architecture!r} models, the base is {architecture!r}")
    names = {t.name: t for t in reader.tensors}
    for name, pair in lora.pairs.items():
        tensor = names.get(name)
        if tensor is None:
            raise MergeError(f"adapter tensor {name}: the base has no such tensor")
        shape = _matrix_shape(tensor)
        if len(shape) != 2 or shape != (pair.b.shape[0], pair.a.shape[1]):
            raise MergeError(
                f"adapter tensor {name}: B A is {pair.b.shape[0]}×{pair.a.shape[1]}, the base's tensor is "
                + "×".join(map(str, shape))
            )


def _check_types(path: Path, plan: dict[str, str]) -> None:
    """The written file has every tensor of the plan, each of its planned type."""
    written = read_header(path).types
    wrong = {name: (written.get(name), kind) for name, kind in plan.items() if written.get(name) != kind}
    if wrong:
        listed = ", ".join(f"{n}: {got} instead of {want}" for n, (got, want) in list(wrong.items())[:5])
        raise MergeError(f"the merged file's tensor types differ from the base's ({len(wrong)}): {listed}")


@dataclass(frozen=True)
class GGUFHeader:
    types: dict[str, str]  # tensor name -> GGML type name, in the file's order
    data_offset: int  # where the tensors' data begins


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """A GGUF's tensor types and data offset from its header alone (gguf's reader parses every metadata value into
    numpy views first: seconds for a tokenizer of 49,152 tokens; this skips them)."""
    from gguf import GGMLQuantizationType, GGUFValueType

    sizes = {
        GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1, GGUFValueType.UINT16: 2,
        GGUFValueType.INT16: 2, GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
        GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
    }  # fmt: skip
    alignment = 32  # GGUF's default, unless general.alignment says otherwise
    with open(path, "rb") as f:
        magic, _version, n_tensors, n_kv = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF":
            raise MergeError(f"{Path(path).name} is not a GGUF file")

        def number(fmt: str) -> int:
            value: int = struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
            return value

        def skip(kind: GGUFValueType) -> None:
            if kind == GGUFValueType.STRING:
                f.seek(number("<Q"), 1)
            elif kind == GGUFValueType.ARRAY:
                item, count = GGUFValueType(number("<I")), number("<Q")
                if item in sizes:
                    f.seek(sizes[item] * count, 1)
                else:
                    for _ in range(count):
                        skip(item)
            else:
                f.seek(sizes[kind], 1)

        for _ in range(n_kv):
            key = f.read(number("<Q"))
            kind = GGUFValueType(number("<I"))
            if key == b"general.alignment" and kind == GGUFValueType.UINT32:
                alignment = number("<I")
            else:
                skip(kind)
        types: dict[str, str] = {}
        for _ in range(n_tensors):
            name = f.read(number("<Q")).decode()
            f.seek(8 * number("<I"), 1)  # the dimensions
            types[name] = GGMLQuantizationType(number("<I")).name
            f.seek(8, 1)  # the data offset
        end = f.tell()
    return GGUFHeader(types, -(-end // alignment) * alignment)


# -- the staging file ------------------------------------------------------------------------------------------


def _write_staging(
    reader: gguf.GGUFReader,
    lora: Adapter,
    plan: dict[str, str],
    path: Path,
    scale: float,
    file_type: int,
) -> None:
    """The base's metadata, then every tensor: those the merge changes in float32 (or their float target type),
    the rest as stored. Float32 so that llama.cpp's quantizer sees exactly ``W + delta``: a block the delta leaves
    alone requantizes to the base's own bytes."""
    from gguf import GGMLQuantizationType, GGUFWriter

    writer = GGUFWriter(str(path), _string(reader, "general.architecture") or "llama")
    _copy_metadata(reader, writer)
    if all(_is_float(kind) for kind in plan.values()):  # the staging file is the result (llama.cpp sets it otherwise)
        writer.add_uint32("general.file_type", file_type)
    staged: list[tuple[Any, str]] = []
    for tensor in reader.tensors:
        kind = plan[tensor.name]
        changes = tensor.name in lora.pairs or kind != tensor.tensor_type.name
        stage = (kind if _is_float(kind) else "F32") if changes else tensor.tensor_type.name
        staged.append((tensor, stage))
        if stage == tensor.tensor_type.name:
            writer.add_tensor_info(
                tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type
            )
        else:
            shape = _matrix_shape(tensor)
            dtype = np.dtype(np.float16 if stage == "F16" else np.float32)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            writer.add_tensor_info(tensor.name, shape, dtype, nbytes, GGMLQuantizationType[stage])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor, stage in staged:
        if stage == tensor.tensor_type.name:
            writer.write_tensor_data(tensor.data)
        else:
            values = _merged(tensor, lora, scale)
            writer.write_tensor_data(values.astype(np.float16 if stage == "F16" else np.float32))
    writer.close()


def _merged(tensor: Any, lora: Adapter, scale: float) -> np.ndarray:
    """The tensor in float32, with its adapter's delta added when it has one."""
    from gguf import dequantize

    weight: np.ndarray = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
    weight = weight.reshape(_matrix_shape(tensor))
    pair = lora.pairs.get(tensor.name)
    if pair is None:
        return weight
    delta: np.ndarray = pair.b @ pair.a  # (out, r) @ (r, in), float32
    merged: np.ndarray = weight + np.float32(lora.factor(tensor.name, scale)) * delta
    return merged


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    """Every key of the base (tokenizer and chat template included) but the file layout's own."""
    from gguf import GGUFValueType

    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in SET_BY_WRITER:
            continue
        kind = field.types[0]
        sub_type = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)


# -- requantizing ----------------------------------------------------------------------------------------------


def _quantize(
    reader: gguf.GGUFReader, plan: dict[str, str], quantization: Quantization, source: Path, out: Path, threads: int
) -> None:
    """llama.cpp's quantizer over the staging file, told the base's type for every tensor."""
    import llama_cpp as lc
    from gguf import GGMLQuantizationType

    from ..engines.llamacpp.model import init_backend

    init_backend()
    params = lc.llama_model_quantize_default_params()
    params.nthread = max(1, threads)
    params.ftype = _ftype(reader, quantization)
    params.allow_requantize = False  # a tensor of the base's type is copied; anything else would be a bug: fail
    for name, field in (("token_embd.weight", "token_embedding_type"), ("output.weight", "output_tensor_type")):
        if name in plan:
            setattr(params, field, int(GGMLQuantizationType[plan[name]]))
    if "output.weight" not in plan and "token_embd.weight" in plan:  # tied embeddings: the output is token_embd
        params.output_tensor_type = int(GGMLQuantizationType[plan["token_embd.weight"]])
    # Every matrix named exactly, to its base type (float ones too: llama.cpp would quantize them by default).
    matrices = [(t.name, plan[t.name]) for t in reader.tensors if len(t.shape) >= 2]
    patterns = [f"^{re.escape(name)}$".encode() for name, _ in matrices]  # kept alive until the call returns
    overrides = (lc.llama_model_tensor_override * (len(matrices) + 1))()
    for slot, pattern, (_, kind) in zip(overrides, patterns, matrices, strict=False):
        slot.pattern = pattern
        slot.type = int(GGMLQuantizationType[kind])
    overrides[len(matrices)].pattern = None  # the list's end
    params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(lc.llama_model_tensor_override))
    status = lc.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if status != 0:
        raise MergeError(f"llama.cpp's quantizer failed (status {status}; see the log)")


def _ftype(reader: gguf.GGUFReader, quantization: Quantization) -> int:
    """The merged file's llama_ftype: the uniform type's, or the base's own (inferred when the base lacks it)."""
    if quantization in UNIFORM:
        return UNIFORM[quantization][1]
    field = reader.get_field("general.file_type")
    if field is not None:
        return int(field.contents())
    kind = _matrix_type(reader)
    if kind not in FTYPE_OF_TYPE:
        raise MergeError(f"the base has no general.file_type and its matrices are mostly {kind}")
    return FTYPE_OF_TYPE[kind]


# -- small helpers ----------------------------------------------------------------------------------------------


def _target_type(tensor: Any, quantization: Quantization) -> str:
    """The tensor's type in the merged file: the base's, or the uniform type for a matrix (vectors stay F32)."""
    kind: str = tensor.tensor_type.name
    if quantization in UNIFORM and len(tensor.shape) >= 2:
        return UNIFORM[quantization][0]
    return kind


def _matrix_type(reader: gguf.GGUFReader) -> str:
    """The type most of the base's matrices have (Q4_1 for the default: its embeddings are Q8_0)."""
    kinds = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) >= 2)
    return kinds.most_common(1)[0][0]


def _is_float(kind: str) -> bool:
    return kind in FLOAT_TYPES


def _matrix_shape(tensor: Any) -> tuple[int, ...]:
    """The tensor's numpy shape (outermost first): GGUF lists dimensions innermost first."""
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def _string(reader: gguf.GGUFReader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None
