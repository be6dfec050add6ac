"""Per-sequence sampler chains built from llama.cpp's C samplers (no per-token Python math)."""

from __future__ import annotations

import ctypes

import llama_cpp as lc
import numpy as np

from ...errors import InvalidFieldError
from ..base import SamplingParams, TokenLogprob, TopLogprob
from .model import LlamaModel

DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random seed


class SamplerChain:
    """Owns a ``llama_sampler`` chain; ``sample`` picks and accepts one token."""

    def __init__(self, model: LlamaModel, params: SamplingParams, grammar: str | None):
        self.ptr = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        try:
            self._build(model, params, grammar)
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: lc.llama_sampler_p) -> None:
        lc.llama_sampler_chain_add(self.ptr, sampler)

    def _build(self, model: LlamaModel, params: SamplingParams, grammar: str | None) -> None:
        if params.logit_bias:
            biases = (lc.llama_logit_bias * len(params.logit_bias))()
            for i, (token, bias) in enumerate(params.logit_bias.items()):
                biases[i].token = token  # type: ignore[assignment]
                biases[i].bias = bias
            self._add(lc.llama_sampler_init_logit_bias(model.n_vocab, len(params.logit_bias), biases))
        if params.repetition_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0:
            self._add(
                lc.llama_sampler_init_penalties(
                    model.n_vocab,
                    64,
                    params.repetition_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                )
            )
        if grammar:
            sampler = lc.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not sampler:
                raise InvalidFieldError("grammar is not valid GBNF (see the server log for where)")
            self._add(sampler)
        if params.greedy:
            self._add(lc.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            self._add(lc.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            self._add(lc.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            self._add(lc.llama_sampler_init_min_p(params.min_p, 1))
        self._add(lc.llama_sampler_init_temp(params.temperature))
        seed = DEFAULT_SEED if params.seed is None else params.seed & 0xFFFFFFFF
        self._add(lc.llama_sampler_init_dist(seed))

    def sample(self, ctx: lc.llama_context_p, index: int) -> int:
        return int(lc.llama_sampler_sample(self.ptr, ctx, index))

    def close(self) -> None:
        if self.ptr:
            lc.llama_sampler_free(self.ptr)
            self.ptr = None


def token_logprobs(model: LlamaModel, ctx: lc.llama_context_p, index: int, token: int, top_n: int) -> TokenLogprob:
    """Log-probability of ``token`` (and the ``top_n`` best) under the raw model distribution."""
    ptr = lc.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(model.n_vocab,))
    shifted = logits - logits.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    top: list[TopLogprob] = []
    if top_n > 0:
        best = np.argpartition(-logprobs, top_n)[:top_n]
        for candidate in best[np.argsort(-logprobs[best])]:
            data = model.piece(int(candidate))
            top.append(TopLogprob(_text(data), float(logprobs[candidate]), list(data)))
    data = model.piece(token)
    return TokenLogprob(_text(data), float(logprobs[token]), list(data), top)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
