"""A GGUF model and its vocabulary, through llama-cpp-python's low-level API."""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path

import llama_cpp as lc

log = logging.getLogger("openglm.llamacpp")
_backend_lock = threading.Lock()
_backend_ready = False
_GGML_WARN, _GGML_ERROR = 3, 4  # ggml_log_level in the vendored ggml.h


@lc.llama_log_callback  # type: ignore[untyped-decorator]
def forward_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp narrates every tensor it loads; keep only warnings and errors.
    if level in (_GGML_WARN, _GGML_ERROR):
        log.log(logging.WARNING if level == _GGML_WARN else logging.ERROR, text.decode(errors="replace").rstrip())


def init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            lc.llama_log_set(forward_log, ctypes.c_void_p(0))
            lc.llama_backend_init()
            _backend_ready = True


class LlamaModel:
    """Owns a loaded ``llama_model``; tokenizes and renders tokens."""

    def __init__(self, path: str, *, vocab_only: bool = False):
        if not Path(path).is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        init_backend()
        params = lc.llama_model_default_params()
        params.use_mmap = True
        # No "extra" buffer types (AMX, repacked weights): on this machine's CPU (AMX) the llama-cpp-python 0.3.36
        # build segfaults in ggml_backend_amx_mul_mat on the first llama_decode from the scheduler's thread, which
        # took the whole server down on any chat request. The plain CPU kernels are used instead.
        params.use_extra_bufts = False
        params.vocab_only = vocab_only  # a tokenizer only (the trainer's): no weights loaded
        self.ptr = lc.llama_model_load_from_file(path.encode(), params)
        if not self.ptr:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.path = path
        self.vocab = lc.llama_model_get_vocab(self.ptr)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.ptr)
        self._piece_cache: dict[int, bytes] = {}

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None

    # -- metadata -------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = lc.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or ""

    @property
    def plain_kv_cache(self) -> bool:
        """Whether every token keeps its own KV cells (no recurrent state, no sliding window)."""
        return not (
            lc.llama_model_is_recurrent(self.ptr)
            or lc.llama_model_is_hybrid(self.ptr)
            or lc.llama_model_n_swa(self.ptr) > 0
        )

    @property
    def chat_template(self) -> str | None:
        return self.meta("tokenizer.chat_template")

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buf = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token renders to, special tokens included (the parsers need them)."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        data = buf.raw[:n]
        self._piece_cache[token] = data
        return data

    def is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def special_token_id(self, text: str) -> int | None:
        """The id of a special token written as text, if it is exactly one token."""
        ids = self.tokenize(text, parse_special=True)
        return ids[0] if len(ids) == 1 else None

    @property
    def bos_text(self) -> str:
        token = lc.llama_vocab_bos(self.vocab)
        return self.piece(token).decode("utf-8", errors="replace") if token >= 0 else ""

    @property
    def eos_text(self) -> str:
        token = lc.llama_vocab_eos(self.vocab)
        return self.piece(token).decode("utf-8", errors="replace") if token >= 0 else ""

    @property
    def adds_bos(self) -> bool:
        return bool(lc.llama_vocab_get_add_bos(self.vocab))
