"""LoRA training in torch: SFT (loss on assistant tokens only) and DPO (the reference: the base with the adapter off,
or with the adapter a continued job started from).

What makes it lean on a CPU:
- **Logits only where there is a label.** The decoder's hidden states go through ``lm_head`` only at the positions
  whose next token is trained; a full-vocabulary logits tensor for every position (49,152 floats each for
  SmolLM2) is never built.
- **Sequence packing without padding.** The examples of an optimizer step are laid out in rows of at most
  ``max_tokens_per_pass`` positions; position ids restart at 0 for each example, and transformers derives a
  block-diagonal causal mask from them (``find_packed_sequence_indices``), so attention never crosses examples and
  no pad token is computed. An example longer than the budget gets a row of its own.
- **Shared starts computed once.** Most lines of a tool-use dataset open with the same system prompt and tool
  listing (55 % of an All Tools line's tokens), and a DPO pair's two replies follow one prompt. ``pack`` puts alike
  starts next to each other and lays out their common start once, each example's rest after it with positions
  continuing from it and an explicit mask letting the rest see only the start and itself: the same log-probs, the
  start's forward and backward done once per row instead of once per example (its LoRA dropout is drawn once for
  the examples sharing it).
- **No attention wasted across examples.** The packing budget (``max_tokens_per_pass``, 512) is small: SDPA
  computes a row's whole T² score matrix before the mask drops the cross-example part, so one 1,000-token row of
  four unrelated examples does about four times the attention work of four rows of 250. Examples joining a shared
  start may widen a row to ``SHARED_WIDTH`` times the budget: sharing keeps its attention per token lower.
- **bf16 compute where the CPU has it** (``precision="auto"``: AVX-512 BF16 or AMX): the frozen base weights are
  kept in bf16 (half the memory) and the forward runs under ``torch.autocast``; the adapter's weights, its
  gradients and the optimizer stay fp32, and log-softmax is taken in fp32.
- **Gradient accumulation** over the rows of a step: ``batch_size`` examples (DPO: pairs) per optimizer step,
  whatever the budget per forward pass.

Reproducible and resumable: a fixed seed; each epoch's order is drawn from ``seed + epoch`` and each step's
dropout from ``seed + step``, so a job resumed from a checkpoint (adapter, optimizer, scheduler, step) takes
exactly the steps an uninterrupted one would. Cancellation is checked between steps, and so is a pause, which saves
a checkpoint of the steps so far first.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .lora import (
    LoRAConfig,
    adapter_parameters,
    adapter_state,
    attach_lora,
    keep_as_reference,
    load_adapter_state,
    reference_model,
    start_from,
)
from .render import IGNORE, Example, Preference

BASE_LEARNING_RATE = 2e-4  # × learning_rate_multiplier
CHECKPOINT = "checkpoint.pt"


class TrainingCancelled(Exception):
    """Raised between steps when the job was cancelled."""


class TrainingPaused(TrainingCancelled):
    """Raised between steps when the job was paused, after a checkpoint of the steps so far was saved."""


@dataclass
class Hyperparameters:
    method: Literal["supervised", "dpo"] = "supervised"
    n_epochs: int = 3
    batch_size: int = 8  # examples (DPO: pairs) per optimizer step
    learning_rate_multiplier: float = 1.0
    base_learning_rate: float = BASE_LEARNING_RATE
    beta: float = 0.1  # DPO
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    seed: int = 42
    max_tokens_per_pass: int = 512  # packing budget of one forward pass
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log_every: int = 5  # progress every this many steps (and on the last)
    eval_every: int = 0  # validation loss every this many steps (0: at each epoch's end); always at the end
    checkpoint_every: int = 0  # 0: no periodic checkpoints

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    loss: float | None  # mean training loss of the steps since the previous report
    eval_loss: float | None
    learning_rate: float
    tokens_per_second: float
    eta_seconds: float
    trained_tokens: int  # the examples' tokens trained so far (prompts included), across epochs


@dataclass
class TrainResult:
    steps: int
    trained_tokens: int
    loss: float | None
    eval_loss: float | None
    history: list[Progress]


Item = Example | Preference


def bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); without it autocast emulates and is slow."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def compute_dtype(precision: str) -> torch.dtype:
    if precision == "bf16" or (precision == "auto" and bf16_supported()):
        return torch.bfloat16
    return torch.float32


def prepare_model(model: nn.Module, hp: Hyperparameters) -> nn.Module:
    """Put the frozen base in the compute dtype and attach the adapter (fp32), unless one is attached already."""
    if not _lora_modules(model):
        dtype = compute_dtype(hp.precision)
        if next(model.parameters()).dtype != dtype:
            model.to(dtype)
        attach_lora(model, hp.lora)
    return model


def load_base_model(
    path: str | os.PathLike[str], *, threads: int | None = None, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """The causal LM from a GGUF file (dequantized by transformers) or a Hugging Face directory, in ``dtype``."""
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    source = Path(path)
    if source.is_file():
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype)
    # The GGUF loader flags the model as quantized, and training code refuses quantized models; the weights are
    # plain fp32 tensors by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.config.use_cache = False
    return model


MIN_SHARED = 32  # tokens: a shorter common start saves too little to be worth an attention mask of its own
# A row may grow to this many times the budget by examples joining a shared start: their rests attend to the start
# and themselves only, so such a row's attention per token stays below that of unrelated examples at the budget
# (counted on 400 All Tools lines in batches of 8: 689 against 776 positions of T² per token at 2× and 1× of 512).
SHARED_WIDTH = 2


@dataclass
class _Pass:
    input_ids: torch.Tensor  # (1, T)
    position_ids: torch.Tensor  # (1, T)
    sources: torch.Tensor  # positions whose hidden state predicts a label
    targets: torch.Tensor  # the labels they predict
    owners: torch.Tensor  # which example of the pass each label belongs to
    examples: int
    tokens: int  # the examples' own tokens (a shared start counted for each): what is trained and billed
    attention: torch.Tensor | None = None  # (1, 1, T, T) bool where examples share a start; else from positions

    @property
    def width(self) -> int:
        """Positions the model computes: ``tokens`` less the repeats of shared starts."""
        return int(self.input_ids.shape[1])


@dataclass
class _Tree:
    """Examples laid out as one copy of the start they share (``shared`` tokens) followed by each one's rest."""

    members: list[Example]
    shared: int

    @property
    def width(self) -> int:
        return self.shared + sum(len(e.input_ids) - self.shared for e in self.members)

    def joined(self, example: Example, min_shared: int) -> _Tree:
        """This tree with ``example`` added: sharing what all of them start with, or nothing worth sharing."""
        common = min(self.shared, _common_start(self.members[0].input_ids, example.input_ids))
        return _Tree([*self.members, example], common if common >= min_shared else 0)


def pack(groups: Sequence[Sequence[Example]], budget: int, *, min_shared: int = MIN_SHARED) -> list[_Pass]:
    """Lay groups of examples out in rows of at most ``budget`` positions, without padding.

    Examples that start alike (the same system prompt and tool listing, a DPO pair's prompt) are placed next to each
    other and their common start is computed once: a row holds trees, each one copy of the start its examples share
    followed by every example's rest, which attends to that start and to itself only (``_Pass.attention``). So a
    step over examples with a 230-token tool listing computes the listing once per row, not once per example.

    A group (one SFT example, or a DPO pair) always stays in one row; a group wider than the budget gets its own.
    ``min_shared``: the shortest common start worth sharing (``sys.maxsize``: none, each example laid out whole).
    Within a row the examples keep the order they were placed in: ``owners`` numbers them so.
    """
    rows: list[list[_Tree]] = []
    for group in sorted(groups, key=lambda group: group[0].input_ids):  # alike starts become neighbours
        if rows:
            extended = _placed(rows[-1], group, min_shared)
            joins = len(extended) == len(rows[-1])  # the group joined the row's last tree: it shares its start
            if sum(tree.width for tree in extended) <= budget * (SHARED_WIDTH if joins else 1):
                rows[-1] = extended
                continue
        rows.append(_placed([], group, min_shared))
    return [_build(row) for row in rows]


def _placed(row: list[_Tree], group: Sequence[Example], min_shared: int) -> list[_Tree]:
    """The row with the group's examples added, each joining the last tree when they share enough of a start."""
    trees = list(row)
    for example in group:
        if trees:
            joined = trees[-1].joined(example, min_shared)
            if joined.shared:
                trees[-1] = joined
                continue
        trees.append(_Tree([example], len(example.input_ids)))
    return trees


def _common_start(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _build(row: Sequence[_Tree]) -> _Pass:
    ids: list[int] = []
    positions: list[int] = []
    branch: list[int] = []  # per position: the example it belongs to, or -1 for a shared start
    trunk: list[int] = []  # per position: its tree
    sources: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    owner = 0
    for n, tree in enumerate(row):
        alone = len(tree.members) == 1
        shared = 0 if alone else tree.shared
        start = len(ids)
        ids += tree.members[0].input_ids[:shared]
        positions += range(shared)
        branch += [-1] * shared
        trunk += [n] * shared
        for example in tree.members:
            offset = len(ids) - shared  # where position ``shared`` of this example lies, less ``shared``
            rest = example.input_ids[shared:]
            ids += rest
            positions += range(shared, shared + len(rest))
            branch += [owner] * len(rest)
            trunk += [n] * len(rest)
            for t in range(1, len(example.labels)):
                if example.labels[t] != IGNORE:
                    source = t - 1
                    sources.append(start + source if source < shared else offset + source)
                    targets.append(example.labels[t])
                    owners.append(owner)
            owner += 1
    attention = None
    if any(len(tree.members) > 1 for tree in row):  # a tree of several always shares at least MIN_SHARED tokens
        attention = _tree_mask(torch.tensor(branch), torch.tensor(trunk))
    return _Pass(
        torch.tensor([ids]),
        torch.tensor([positions]),
        torch.tensor(sources, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        torch.tensor(owners, dtype=torch.long),
        owner,
        sum(len(e.input_ids) for tree in row for e in tree.members),
        attention,
    )


def _tree_mask(branch: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
    """Who may attend to whom: earlier positions of the same tree that are its shared start or the same example."""
    width = len(branch)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_tree = trunk[:, None] == trunk[None, :]
    visible = (branch[None, :] == -1) | (branch[:, None] == branch[None, :])
    return (causal & same_tree & visible)[None, None]


def label_logprobs(model: nn.Module, batch: _Pass) -> torch.Tensor:
    """Log-probability of each label, computing logits only at the labelled positions."""
    dtype = model.get_input_embeddings().weight.dtype  # the base's: bf16 when training in bf16 (``prepare_model``)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        hidden = model.model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=batch.attention,
            use_cache=False,
        ).last_hidden_state[0]
        logits = model.lm_head(hidden.index_select(0, batch.sources))
    logits = logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(1, batch.targets.unsqueeze(1)).squeeze(1)


def sequence_logprobs(model: nn.Module, batch: _Pass) -> torch.Tensor:
    """Per example of the pass: the summed log-probability of its labelled tokens."""
    per_label = label_logprobs(model, batch)
    return torch.zeros(batch.examples, dtype=per_label.dtype).index_add(0, batch.owners, per_label)


class Trainer:
    """One training run over rendered data; ``run`` resumes from ``checkpoint_dir`` when a checkpoint is there."""

    def __init__(
        self,
        model: nn.Module,
        train: Sequence[Item],
        hyperparameters: Hyperparameters,
        *,
        validation: Sequence[Item] = (),
        checkpoint_dir: str | os.PathLike[str] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        should_pause: Callable[[], bool] | None = None,
        threads: int | None = None,
        initial_adapter: dict[str, torch.Tensor] | None = None,
    ):
        if not train:
            raise ValueError("no training examples")
        kind = Preference if hyperparameters.method == "dpo" else Example
        if not all(isinstance(item, kind) for item in [*train, *validation]):
            raise ValueError(f"{hyperparameters.method} training takes {kind.__name__} items only")
        self.model = model
        self.train_items = list(train)
        self.validation = list(validation)
        self.hp = hyperparameters
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self.should_pause = should_pause
        self.threads = threads
        # The adapter of the fine-tuned model a job continues (``export.read_adapter``): where training starts, and
        # DPO's reference. None: a fresh adapter, which changes nothing, on the base as the reference.
        self.initial_adapter = initial_adapter
        self.steps_per_epoch = math.ceil(len(self.train_items) / hyperparameters.batch_size)
        self.total_steps = self.steps_per_epoch * hyperparameters.n_epochs

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        if self.threads:
            torch.set_num_threads(self.threads)
        hp = self.hp
        torch.manual_seed(hp.seed)  # the adapter's initialisation
        prepare_model(self.model, hp)
        if self.initial_adapter is not None:  # before the resume, whose checkpoint holds the steps taken from it
            start_from(self.model, self.initial_adapter)
            keep_as_reference(self.model)
        parameters = adapter_parameters(self.model)
        optimizer = torch.optim.AdamW(parameters, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        warmup = int(self.total_steps * hp.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(warmup, self.total_steps))
        step, trained_tokens = self._resume(optimizer, scheduler)
        saved = step  # the step of the checkpoint on disk
        history: list[Progress] = []
        eval_loss: float | None = None
        losses: list[float] = []
        started, tokens_since = time.monotonic(), 0
        self.model.train()
        while step < self.total_steps:
            if self.should_cancel is not None and self.should_cancel():
                raise TrainingCancelled(f"cancelled before step {step + 1} of {self.total_steps}")
            if self.should_pause is not None and self.should_pause():
                if self.checkpoint_dir is not None and step > saved:  # a resume goes on from exactly here
                    self.save_checkpoint(step, trained_tokens, optimizer, scheduler)
                raise TrainingPaused(f"paused before step {step + 1} of {self.total_steps}")
            lr = scheduler.get_last_lr()[0]
            torch.manual_seed(hp.seed + 1 + step)  # dropout: the same for a resumed run
            loss, tokens = self._step(self._batch(step))
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss)
            trained_tokens += tokens
            tokens_since += tokens
            last = step == self.total_steps
            if self.validation and (last or self._eval_due(step)):
                eval_loss = self.evaluate()
            if hp.checkpoint_every and self.checkpoint_dir is not None and (step % hp.checkpoint_every == 0 or last):
                self.save_checkpoint(step, trained_tokens, optimizer, scheduler)
                saved = step
            if step % max(hp.log_every, 1) == 0 or last:
                elapsed = max(time.monotonic() - started, 1e-9)
                rate = tokens_since / elapsed
                per_step = elapsed / max(len(losses), 1) if losses else 0.0
                report = Progress(
                    step=step,
                    total_steps=self.total_steps,
                    epoch=step / self.steps_per_epoch,
                    loss=sum(losses) / len(losses),
                    eval_loss=eval_loss,
                    learning_rate=lr,
                    tokens_per_second=rate,
                    eta_seconds=per_step * (self.total_steps - step),
                    trained_tokens=trained_tokens,
                )
                history.append(report)
                if self.on_progress is not None:
                    self.on_progress(report)
                losses, started, tokens_since = [], time.monotonic(), 0
        final = history[-1] if history else None
        return TrainResult(step, trained_tokens, final.loss if final else None, eval_loss, history)

    def _eval_due(self, step: int) -> bool:
        every = self.hp.eval_every or self.steps_per_epoch
        return step % every == 0

    def _batch(self, step: int) -> list[Item]:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = list(range(len(self.train_items)))
        random.Random(self.hp.seed * 1_000_003 + epoch).shuffle(order)
        size = self.hp.batch_size
        return [self.train_items[i] for i in order[index * size : (index + 1) * size]]

    def _step(self, items: Sequence[Item]) -> tuple[float, int]:
        """Forward and backward over one optimizer step's items; returns (loss, tokens through the model)."""
        if self.hp.method == "dpo":
            return self._dpo_step([item for item in items if isinstance(item, Preference)], train=True)
        examples = [item for item in items if isinstance(item, Example)]
        labelled = sum(max(e.trained_tokens - (e.labels[0] != IGNORE), 0) for e in examples)
        total, tokens = 0.0, 0
        for batch in pack([[e] for e in examples], self.hp.max_tokens_per_pass):
            if len(batch.targets) == 0:
                continue
            loss = -label_logprobs(self.model, batch).sum() / max(labelled, 1)
            loss.backward()
            total += float(loss.detach())
            tokens += batch.tokens
        return total, tokens

    def _dpo_step(self, pairs: Sequence[Preference], *, train: bool) -> tuple[float, int]:
        """DPO over pairs packed two by two (chosen, rejected) into rows; the loss is their mean."""
        beta = self.hp.beta
        total, tokens = 0.0, 0
        for batch in pack([pair.examples() for pair in pairs], self.hp.max_tokens_per_pass):
            with torch.no_grad(), reference_model(self.model):
                reference = sequence_logprobs(self.model, batch)
            with torch.set_grad_enabled(train):
                policy = sequence_logprobs(self.model, batch)
                margins = (policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2])
                loss = -nn.functional.logsigmoid(beta * margins).sum() / len(pairs)
                if train:
                    loss.backward()
            total += float(loss.detach())
            tokens += batch.tokens
        return total, tokens

    def evaluate(self) -> float:
        """Validation loss: mean token NLL of the assistant tokens (SFT), mean DPO loss (DPO); dropout off."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self._evaluate()
        finally:
            self.model.train(was_training)

    def _evaluate(self) -> float:
        if self.hp.method == "dpo":
            pairs = [item for item in self.validation if isinstance(item, Preference)]
            return self._dpo_step(pairs, train=False)[0]
        examples = [item for item in self.validation if isinstance(item, Example)]
        nll, count = 0.0, 0
        for batch in pack([[e] for e in examples], self.hp.max_tokens_per_pass):
            if len(batch.targets):
                nll -= float(label_logprobs(self.model, batch).sum())
                count += len(batch.targets)
        return nll / max(count, 1)

    # -- checkpoints ------------------------------------------------------------------------------------------

    def save_checkpoint(
        self,
        step: int,
        trained_tokens: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> Path:
        assert self.checkpoint_dir is not None
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "trained_tokens": trained_tokens,
            "total_steps": self.total_steps,
            "hyperparameters": asdict(self.hp),
            "adapter": adapter_state(self.model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        path = self.checkpoint_dir / CHECKPOINT
        partial = path.with_suffix(".partial")
        torch.save(state, partial)
        os.replace(partial, path)  # a crash mid-write leaves the previous checkpoint whole
        return path

    def _resume(
        self, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> tuple[int, int]:
        if self.checkpoint_dir is None or not (self.checkpoint_dir / CHECKPOINT).is_file():
            return 0, 0
        state: dict[str, Any] = torch.load(self.checkpoint_dir / CHECKPOINT, weights_only=False)
        if state["total_steps"] != self.total_steps or state["hyperparameters"] != asdict(self.hp):
            raise ValueError("the checkpoint belongs to a run with other data or hyperparameters")
        load_adapter_state(self.model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        return int(state["step"]), int(state["trained_tokens"])


def _lora_modules(model: nn.Module) -> list[nn.Module]:
    from .lora import LoRALinear

    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warmup from 1/(warmup+1) to 1, then linear decay towards 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(total - warmup, 1))

    return factor
