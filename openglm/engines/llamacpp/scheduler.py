"""Continuous batching over one llama.cpp context.

A single decode thread owns the context. Each step it builds one batch from
every active sequence: one token for each sequence that is generating, and
prompt chunks (up to the batch budget) for sequences still prefilling.
Sequences join between steps when a slot and KV room are free, and leave
when they finish or are cancelled. If the KV cache is full the youngest
sequence is preempted: its cache is dropped and it is re-queued to be
recomputed (prompt and generated tokens) once room frees up.

LoRA adapters apply to the whole context, not per sequence, so a step decodes
the active sequences in groups of equal adapter (None, the base, is a group
too): for each group the batch holds that group's tokens only, the context's
adapters are set to the group's (``llama_set_adapters_lora``; none clears
them), and the group is decoded and sampled before the next group's turn.
Every group gets a decode each step; the step's prompt budget (``batch_size``
less one token per generating sequence) goes to the groups in an order that
rotates from step to step.

A sequence with images (``vision.py``) has each image's embeddings decoded on
their own, in the step that reaches the image's first position: its prompt is
fed in text runs up to an image, then the image, then the text after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
from collections import defaultdict, deque
from typing import TYPE_CHECKING

import llama_cpp as lc

from ...errors import EngineError, PromptTooLongError
from ..base import GenerationChunk
from .adapters import AdapterCache, LoadedAdapter, LoraKey
from .model import LlamaModel
from .sampling import token_logprobs
from .sequence import Sequence
from .slots import SlotPool, common_prefix
from .speculative import propose_draft

if TYPE_CHECKING:
    from .vision import Projector

log = logging.getLogger(__name__)

Delivery = tuple[Sequence, GenerationChunk | BaseException]


class BatchScheduler:
    def __init__(
        self,
        model: LlamaModel,
        *,
        threads: int,
        parallel: int,
        kv_tokens: int,
        batch_size: int = 512,
        kv_unified: bool = True,
        flash_attn: int = -1,
        prefix_cache: bool = True,
        draft_tokens: int = 0,
        draft_max_batch: int = 2,
        max_adapters: int = 8,
        projector: Projector | None = None,
    ):
        self.model = model
        self.projector = projector
        self.kv_tokens = kv_tokens
        self.batch_size = batch_size
        params = lc.llama_context_default_params()
        params.n_ctx = kv_tokens
        params.n_batch = batch_size
        params.n_ubatch = batch_size
        params.n_seq_max = parallel
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = kv_unified
        params.flash_attn_type = flash_attn
        params.no_perf = True
        self.ctx = lc.llama_init_from_model(model.ptr, params)
        if not self.ctx:
            raise EngineError("llama.cpp could not create a context")
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(batch_size, 0, 1)
        self._cond = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self.slots = SlotPool(self.memory, parallel, reuse=kv_unified and prefix_cache)
        self._stopping = False
        self.reused_tokens = 0
        self.draft_tokens = draft_tokens
        self.draft_max_batch = draft_max_batch
        self.drafted_tokens = 0
        self.accepted_tokens = 0
        self.adapters = AdapterCache(model, max_adapters, wake=self._wake)
        self._applied: tuple[LoadedAdapter, float] | None = None  # the adapter set on the context now
        self._turn = 0  # rotates which adapter group has the first claim on the prompt budget
        self._thread = threading.Thread(target=self._run, name="llamacpp-batch", daemon=True)
        self._thread.start()

    # -- called from the event loop ---------------------------------------------

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise EngineError("the engine is not running")
            self._enqueue(seq)
            self._cond.notify()

    def _enqueue(self, seq: Sequence, *, front: bool = False) -> None:
        """Interactive sequences wait ahead of every background one (batch lines); ``front``: at the head of its
        own kind (a preempted sequence, to be resumed first). Called with the lock held."""
        kinds = [s.background for s in self._waiting]
        if seq.background:
            at = kinds.index(True) if front and True in kinds else len(kinds)
        else:
            at = 0 if front else (kinds.index(True) if True in kinds else len(kinds))
        self._waiting.insert(at, seq)

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True
        with self._cond:
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        self.ctx = None
        for adapter in self.adapters.close():  # the context that used them is gone
            lc.llama_adapter_lora_free(adapter.ptr)

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "active": len(self._active),
                "waiting": len(self._waiting),
                "cached_prefixes": self.slots.n_cached,
                "reused_prompt_tokens": self.reused_tokens,
                "drafted_tokens": self.drafted_tokens,
                "accepted_draft_tokens": self.accepted_tokens,
                "loaded_adapters": self.adapters.n_loaded,
                "adapter_loads": self.adapters.loads,
            }

    # -- the decode thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            out: list[Delivery] = []
            try:
                with self._cond:
                    while (
                        not self._stopping and not self._waiting and not self._active and not self.adapters.has_doomed
                    ):
                        self._cond.wait()
                    if self._stopping:
                        break
                    self._admit()
                self._free_doomed_adapters()
                self._step(out)
            except Exception as exc:  # keep the thread alive; fail what was running
                log.exception("decode step failed")
                for seq in list(self._active):
                    self._finish(seq)
                    out.append((seq, EngineError(f"generation failed: {exc}")))
            self._deliver(out)
        with self._cond:
            leftover = [*self._active, *self._waiting]
            self._waiting.clear()
        self._deliver([(seq, EngineError("the engine is shutting down")) for seq in leftover])
        for seq in leftover:
            seq.close()

    def _admit(self) -> None:
        while self._waiting:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft().close()
                continue
            if self._prefix_in_progress(seq):
                break  # a running sequence is computing this prompt's start: share it next step
            # Tokens a cached prefix already holds need no new room, and that prefix must survive eviction.
            keep, reusable = self.slots.best_cached(seq.tokens, seq.lora_key)
            need = len(seq.tokens) - reusable + min(seq.remaining, 64)
            if not self._make_room(need, keep) and self._active:
                break
            running = [(s.slot, s.lora_key, s.tokens[: s.n_past]) for s in self._active]
            acquired = self.slots.acquire(seq.tokens, running, seq.lora_key)
            if acquired is None and not seq.background and self._yield_slot():
                continue  # a background sequence gave its slot up: try again
            if acquired is None:
                break
            self._waiting.popleft()
            seq.slot, seq.n_past = acquired
            picture = seq.next_picture()
            if picture is not None and picture.start < seq.n_past:  # the reused prefix ends inside an image
                lc.llama_memory_seq_rm(self.memory, seq.slot, picture.start, -1)
                seq.n_past = picture.start
            self.reused_tokens += seq.n_past
            self._active.append(seq)

    def _yield_slot(self) -> bool:
        """An interactive sequence finds every slot taken: the youngest background sequence gives its slot up and
        waits at the head of the background queue, to be recomputed (its prompt is likely still cached)."""
        background = [s for s in self._active if s.background]
        if not background:
            return False
        victim = max(background, key=lambda s: s.order)
        self._active.remove(victim)
        self.slots.release(victim.slot, victim.tokens[: victim.n_past], victim.lora_key)
        victim.slot, victim.n_past, victim.feeding = -1, 0, 0
        self._enqueue(victim, front=True)
        return True

    def _prefix_in_progress(self, seq: Sequence) -> bool:
        if not self.slots.reuses:
            return False
        limit = len(seq.tokens) - 1
        for other in self._active:
            if other.lora_key != seq.lora_key:
                continue  # its cells hold values computed under another adapter: nothing to share
            if other.background and not seq.background:
                continue  # paused while interactive prompts are read: waiting for it could wait long
            if other.n_past < limit and common_prefix(other.tokens, seq.tokens, limit) > max(
                other.n_past, self.slots.min_reuse - 1
            ):
                return True
        return False

    def _make_room(self, need: int, keep: int | None) -> bool:
        """Evict cached prefixes until ``need`` more tokens fit in the KV cache."""
        while sum(len(s.tokens) for s in self._active) + self.slots.cached_tokens + need > self.kv_tokens:
            if not self.slots.evict_one(keep):
                return False
        return True

    def _step(self, out: list[Delivery]) -> None:
        for seq in [s for s in self._active if s.cancelled]:
            self._finish(seq)
        if not self._active:
            return
        stepping = self._stepping()
        # Each generating sequence needs one token this step; prompt chunks share what is left.
        budget = self.batch_size - sum(1 for s in stepping if s.pending == 1)
        for group in self._groups(stepping):
            if not self._decode_pictures(group, out):
                return
            rows, used = self._fill_batch(group, budget)
            budget -= used
            if self.batch.n_tokens == 0:
                continue  # the prompt budget went to other groups this step
            self._apply_adapter(group[0])
            rc = lc.llama_decode(self.ctx, self.batch)
            if rc == 1 and self._drop_drafts():
                return  # the guesses did not fit: try again without them before preempting anyone
            if rc == 1:
                self._preempt(out)
                return
            if rc != 0:
                raise EngineError(f"llama_decode returned {rc}")
            for seq in group:
                seq.n_past += seq.feeding
            for seq, index in rows:  # before the next group's decode overwrites the logits
                self._sample(seq, index, out)

    def _decode_pictures(self, group: list[Sequence], out: list[Delivery]) -> bool:
        """Decode the image each sequence of ``group`` has reached; False when the KV cache was full (someone was
        preempted: the step ends)."""
        for seq in group:
            picture = seq.next_picture()
            if picture is None or picture.start != seq.n_past:
                continue
            assert self.projector is not None
            self._apply_adapter(seq)
            rc = self.projector.decode(self.ctx, picture, seq.slot, self.batch_size)
            if rc != 0:  # cells of the pieces that were decoded: the image is decoded again, whole
                lc.llama_memory_seq_rm(self.memory, seq.slot, picture.start, -1)
            if rc == 1:
                self._preempt(out)
                return False
            if rc != 0:
                raise EngineError(f"decoding an image returned {rc}")
            seq.n_past = picture.end
        return True

    def _stepping(self) -> list[Sequence]:
        """The sequences this step decodes: all of them, but while an interactive sequence is reading its prompt
        the background ones wait a step, so that its first token comes as soon as it would without them."""
        if any(not s.background and s.pending > 1 for s in self._active):
            return [s for s in self._active if not s.background]
        return self._active

    def _groups(self, stepping: list[Sequence]) -> list[list[Sequence]]:
        """The sequences by adapter, in an order that rotates each step when there are several."""
        by_lora: dict[LoraKey, list[Sequence]] = {}
        for seq in stepping:
            by_lora.setdefault(seq.lora_key, []).append(seq)
        groups = list(by_lora.values())
        if len(groups) > 1:
            self._turn += 1
            first = self._turn % len(groups)
            groups = groups[first:] + groups[:first]
        return groups

    def _apply_adapter(self, seq: Sequence) -> None:
        """Set the context's adapters to ``seq``'s (none for the base); llama.cpp skips an unchanged set."""
        wanted = None if seq.adapter is None else (seq.adapter, seq.scale)
        if wanted == self._applied:
            return
        if seq.adapter is None:
            rc = lc.llama_set_adapters_lora(self.ctx, None, 0, None)
        else:
            adapters = (lc.llama_adapter_lora_p_ctypes * 1)(seq.adapter.ptr)
            scales = (ctypes.c_float * 1)(seq.scale)
            rc = lc.llama_set_adapters_lora(self.ctx, adapters, 1, scales)
        if rc != 0:
            raise EngineError(f"llama_set_adapters_lora returned {rc}")
        self._applied = wanted

    def _free_doomed_adapters(self) -> None:
        """Free adapters the cache evicted (no sequence holds them), first taking them off the context."""
        doomed = self.adapters.take_doomed()
        if not doomed:
            return
        if self._applied is not None and self._applied[0] in doomed:
            lc.llama_set_adapters_lora(self.ctx, None, 0, None)
            self._applied = None
        for adapter in doomed:
            lc.llama_adapter_lora_free(adapter.ptr)

    def _fill_batch(self, group: list[Sequence], budget: int) -> tuple[list[tuple[Sequence, int]], int]:
        """One group's batch: generating sequences first (one token each, plus any draft), then prompt chunks
        from ``budget`` prompt tokens. The rows to sample, and the prompt tokens taken."""
        n = used = 0
        rows: list[tuple[Sequence, int]] = []
        speculate = self.draft_tokens > 0 and len(self._active) <= self.draft_max_batch
        for seq in sorted(group, key=lambda s: s.pending > 1):
            room = self.batch_size - n
            take = min(seq.feedable(), room if seq.pending == 1 else min(room, budget - used))
            seq.feeding = max(take, 0)
            if seq.pending > 1:
                used += seq.feeding
            seq.draft = self._draft(seq) if speculate and seq.pending == 1 and seq.feeding else []
            if seq.feeding and len(seq.draft) + n + 1 > self.batch_size:
                seq.draft = []
            self._put(n, seq.tokens[seq.n_past : seq.n_past + seq.feeding], seq.n_past, seq.slot)
            if seq.feeding and take == seq.pending:
                self.batch.logits[n + take - 1] = 1
                rows.append((seq, n + take - 1))
                # Drafted tokens follow, each with logits, at the positions they would take.
                self._put(n + take, seq.draft, seq.n_past + take, seq.slot, logits=True)
            n += seq.feeding + len(seq.draft)
        self.batch.n_tokens = n
        return rows, used

    def _put(self, at: int, tokens: list[int], pos: int, slot: int, logits: bool = False) -> None:
        batch = self.batch
        for j, token in enumerate(tokens):
            batch.token[at + j] = token
            batch.pos[at + j] = pos + j
            batch.n_seq_id[at + j] = 1
            batch.seq_id[at + j][0] = slot
            batch.logits[at + j] = logits

    def _drop_drafts(self) -> bool:
        drafted = [seq for seq in self._active if seq.draft]
        for seq in drafted:
            seq.draft = []
            seq.draft_stats.cooldown = 8
        return bool(drafted)

    def _draft(self, seq: Sequence) -> list[int]:
        room = min(self.draft_tokens, seq.remaining - 1, seq.limit - len(seq.tokens) - 1)
        if room <= 0 or not seq.draft_stats.should_try():
            return []
        draft = propose_draft(seq.tokens, room)
        image = next((i for i, token in enumerate(draft) if token < 0), None)  # an image's placeholder: not a token
        return draft if image is None else draft[:image]

    def _sample(self, seq: Sequence, index: int, out: list[Delivery]) -> None:
        """Sample at ``index``; while samples match the draft, the next drafted position is valid too."""
        draft, seq.draft = seq.draft, []
        accepted = 0
        while True:
            token = self._sample_one(seq, index + accepted, out)
            if token is None or accepted == len(draft) or token != draft[accepted]:
                break
            accepted += 1
            seq.n_past += 1  # the drafted cell now holds the token that was actually sampled
        if draft:
            seq.draft_stats.record(len(draft), accepted)
            self.drafted_tokens += len(draft)
            self.accepted_tokens += accepted
            if not seq.finished:
                lc.llama_memory_seq_rm(self.memory, seq.slot, seq.n_past, -1)

    def _sample_one(self, seq: Sequence, index: int, out: list[Delivery]) -> int | None:
        """One token from the sequence's sampler chain; None once the sequence has finished."""
        token = seq.sampler.sample(self.ctx, index)
        logprobs = [token_logprobs(self.model, self.ctx, index, token, seq.top_logprobs)] if seq.logprobs else []
        seq.n_generated += 1
        if self.model.is_eog(token) or token in seq.stop_ids:
            self._finish(seq)
            out.append((seq, GenerationChunk(seq.decoder.decode(b"", final=True), 1, [], "stop")))
            return None
        text = seq.decoder.decode(self.model.piece(token))
        seq.tokens.append(token)
        finish = None
        if seq.n_generated >= seq.max_tokens or len(seq.tokens) >= seq.limit:
            finish = "length"
            text += seq.decoder.decode(b"", final=True)
            self._finish(seq)
        out.append((seq, GenerationChunk(text, 1, logprobs, finish)))
        return None if finish else token

    def _preempt(self, out: list[Delivery]) -> None:
        """The KV cache is full: drop cached prefixes, else recompute the youngest sequence later."""
        if self.slots.evict_one():
            return
        if len(self._active) == 1:
            seq = self._active[0]
            self._finish(seq)
            out.append((seq, PromptTooLongError("the request does not fit in the KV cache")))
            return
        background = [s for s in self._active if s.background]
        victim = max(background or self._active, key=lambda s: s.order)  # a batch line first, the youngest
        log.info("KV cache full: preempting a sequence of %d tokens", len(victim.tokens))
        self._active.remove(victim)
        self.slots.drop(victim.slot)
        victim.slot, victim.n_past, victim.feeding = -1, 0, 0
        with self._cond:
            self._enqueue(victim, front=True)

    def _finish(self, seq: Sequence) -> None:
        if seq.finished:
            return
        seq.finished = True
        self._active.remove(seq)
        lc.llama_memory_seq_rm(self.memory, seq.slot, seq.n_past, -1)  # cells of unverified drafts
        self.slots.release(seq.slot, seq.tokens[: seq.n_past], seq.lora_key)
        seq.close()

    @staticmethod
    def _deliver(out: list[Delivery]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Delivery]] = defaultdict(list)
        for seq, item in out:
            if not seq.cancelled:
                by_loop[seq.loop].append((seq, item))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening
                loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[Delivery]) -> None:
    for seq, item in items:
        seq.queue.put_nowait(item)
