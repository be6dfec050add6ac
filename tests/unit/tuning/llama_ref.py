"""llama.cpp's view of a GGUF with and without a LoRA adapter: last-position logits and greedy text."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as lc
import numpy as np

from openglm.engines.llamacpp.model import LlamaModel


class LlamaReference:
    def __init__(self, path: str):
        self.model = LlamaModel(path)
        params = lc.llama_context_default_params()
        # One thread: two spin at each other's barriers on busy cores (conftest.py's TRAINING_THREADS); measured on
        # the default, 12 prompts and 24 greedy tokens took 3.4 s with one and 6.5-55 s with two on the shared machine.
        params.n_ctx, params.n_threads, params.n_threads_batch = 512, 1, 1
        self.ctx = lc.llama_init_from_model(self.model.ptr, params)
        self.adapters: list[Any] = []

    def adapter(self, path: str) -> Any:
        adapter = lc.llama_adapter_lora_init(self.model.ptr, path.encode())
        assert adapter, f"llama.cpp refused the adapter {path}"
        self.adapters.append(adapter)
        return adapter

    def _use(self, adapter: Any) -> None:
        if adapter is None:
            lc.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            lc.llama_set_adapters_lora(
                self.ctx, (lc.llama_adapter_lora_p_ctypes * 1)(adapter), 1, (ctypes.c_float * 1)(1.0)
            )

    def _decode(self, ids: list[int], fresh: bool) -> np.ndarray:
        if fresh:
            lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        tokens = (lc.llama_token * len(ids))(*ids)
        assert lc.llama_decode(self.ctx, lc.llama_batch_get_one(tokens, len(ids))) == 0
        logits = lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(logits, shape=(self.model.n_vocab,)).copy()

    def logits(self, ids: list[int], adapter: Any = None) -> np.ndarray:
        self._use(adapter)
        return self._decode(ids, fresh=True)

    def greedy(self, ids: list[int], n: int, adapter: Any = None) -> str:
        self._use(adapter)
        logits = self._decode(ids, fresh=True)
        out: list[int] = []
        for _ in range(n):
            token = int(logits.argmax())
            if self.model.is_eog(token):
                break
            out.append(token)
            logits = self._decode([token], fresh=False)
        return b"".join(self.model.piece(t) for t in out).decode(errors="replace")

    def close(self) -> None:
        for adapter in self.adapters:
            lc.llama_adapter_lora_free(adapter)
        lc.llama_free(self.ctx)
        self.model.close()
