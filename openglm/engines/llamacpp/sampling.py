"""Per-sequence sampler chains built from llama.cpp's C samplers (no per-token Python math)."""

from __future__ import annotations

import ctypes
import logging
import math
import re

import llama_cpp as lc
import numpy as np

from ...errors import InvalidFieldError
from ..base import SamplingParams, TokenLogprob, TopLogprob
from .grammars import CompiledGrammar
from .model import LlamaModel

log = logging.getLogger("openglm.llamacpp")
DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random seed


TRIGGER_WINDOW = 256  # bytes of recent output a trigger may start in (triggers are anchored at the end)


class SamplerChain:
    """Owns a ``llama_sampler`` chain; ``sample`` picks and accepts one token.

    With ``triggers`` the grammar is lazy: the chain samples freely until the output ends with a match of one
    of the trigger regexes, then it is rebuilt with the grammar, which first accepts the text from the match's
    first group on. llama.cpp has lazy grammars of its own, but it matches its patterns against the whole output
    on every token (quadratic in the output's length: +47% decode time at 1900 tokens here), and a trigger text
    its grammar rejects aborts the process; here a trigger costs one regex search over a short window, and the
    parsers' triggers only ever match text their call grammar accepts.
    """

    def __init__(
        self,
        model: LlamaModel,
        params: SamplingParams,
        grammar: CompiledGrammar | str | None,
        triggers: tuple[str, ...] = (),
    ):
        self.ptr = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if isinstance(grammar, str):
            grammar = CompiledGrammar(model, grammar) if grammar else None
        self._model, self._params, self._grammar = model, params, grammar
        self._triggers = [re.compile(t.encode()) for t in triggers] if grammar else []
        self._output = bytearray()
        self._grammar_ptr: lc.llama_sampler_p | None = None  # owned by the chain
        try:
            self._build(model, params, None if self._triggers else grammar)
        except BaseException:
            self.close()
            raise

    def _add(self, sampler: lc.llama_sampler_p) -> None:
        lc.llama_sampler_chain_add(self.ptr, sampler)

    def _build(self, model: LlamaModel, params: SamplingParams, grammar: CompiledGrammar | None) -> None:
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
        if grammar is not None:
            sampler = grammar.sampler()  # a copy of the parsed grammar: nothing is parsed here
            if not sampler:
                raise InvalidFieldError("the grammar could not be set up")
            self._add(sampler)
            self._grammar_ptr = sampler
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

    @property
    def constrained(self) -> bool:
        """Whether a grammar is in force (a lazy one once it has been triggered)."""
        return self._grammar_ptr is not None

    def sample(self, ctx: lc.llama_context_p, index: int) -> int:
        token = int(lc.llama_sampler_sample(self.ptr, ctx, index))
        if self._triggers:
            self._watch(token)
        return token

    def _watch(self, token: int) -> None:
        self._output += self._model.piece(token)
        start = max(0, len(self._output) - TRIGGER_WINDOW)
        for trigger in self._triggers:
            match = trigger.search(self._output, start)
            if match is not None:
                self._constrain(bytes(self._output[match.start(1) :]))
                return

    def _constrain(self, accepted: bytes) -> None:
        """Switch to the grammar, which has already seen ``accepted`` (the start of the call)."""
        self._triggers = []
        chain = SamplerChain(self._model, self._params, self._grammar)
        for token in self._model.tokenize(accepted.decode("utf-8", errors="replace")):
            # llama.cpp aborts the process when a grammar is made to accept a token it rejects: ask first.
            if not chain.allows(token):
                log.warning("lazy grammar: trigger text %r is not a start the grammar accepts", accepted)
                chain.close()
                return
            lc.llama_sampler_accept(chain.ptr, token)
        self.close()
        self.ptr, chain.ptr = chain.ptr, None
        self._grammar_ptr, chain._grammar_ptr = chain._grammar_ptr, None

    def allows(self, token: int) -> bool:
        """Whether the grammar (if any) lets ``token`` come next."""
        if self._grammar_ptr is None:
            return True
        candidates = (lc.llama_token_data * 1)(lc.llama_token_data(token, 0.0, 0.0))
        view = lc.llama_token_data_array(candidates, 1, -1, False)
        lc.llama_sampler_apply(self._grammar_ptr, ctypes.byref(view))
        return math.isfinite(candidates[0].logit)

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
