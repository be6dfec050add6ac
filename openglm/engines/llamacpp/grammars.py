"""Grammars parsed once per engine and cloned per sequence.

llama.cpp parses a GBNF text into rules and a start state; a sequence needs its own copy of that state, which
``llama_sampler_clone`` makes without parsing again. Parsing runs in a thread (``asyncio.to_thread`` in the
engine), never on the event loop nor, for lazy grammars, in the decode thread that every sequence shares. The
texts that reach an engine were checked and parsed by llama.cpp in a worker process first
(``serving/grammar_compile.py``), so a parse here is known to fit the server's limits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import llama_cpp as lc

from ...errors import InvalidFieldError
from .model import LlamaModel

CACHED_GRAMMARS = 32


class CompiledGrammar:
    """One parsed grammar. Freed when the last holder (the cache, a sequence waiting for its trigger) lets go."""

    def __init__(self, model: LlamaModel, text: str):
        self.text = text
        self._ptr = lc.llama_sampler_init_grammar(model.vocab, text.encode(), b"root")
        if not self._ptr:
            raise InvalidFieldError("grammar is not valid GBNF (see the server log for where)")

    def sampler(self) -> lc.llama_sampler_p:
        """A fresh grammar sampler at the start state, owned by the caller (a sampler chain)."""
        clone: lc.llama_sampler_p = lc.llama_sampler_clone(self._ptr)
        return clone

    def __del__(self) -> None:
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr:
            lc.llama_sampler_free(ptr)


class GrammarCache:
    """The last few grammars an engine parsed (agents send the same tool grammar round after round)."""

    def __init__(self, model: LlamaModel, size: int = CACHED_GRAMMARS):
        self.model = model
        self.size = size
        self._grammars: OrderedDict[str, CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> CompiledGrammar:
        """The parsed grammar; parses it when it is not cached (call from a thread: parsing can take a while)."""
        with self._lock:
            found = self._grammars.get(text)
            if found is not None:
                self._grammars.move_to_end(text)
                return found
        compiled = CompiledGrammar(self.model, text)
        with self._lock:
            self._grammars[text] = compiled
            while len(self._grammars) > self.size:
                self._grammars.popitem(last=False)
        return compiled
