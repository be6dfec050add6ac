"""The ``classifier`` checker: a text-classification model — a Hugging Face sequence-classification directory
(config, weights, tokenizer), such as a toxicity or moderation classifier the operator chose or trained — read
locally with transformers on the CPU.

Options:
    model        the model's directory (required; nothing is downloaded)
    labels       {the model's label: our category}; labels not listed ("OK", "safe", "neutral") never hit (required)
    threshold    the probability a listed label must reach (default 0.5)
    max_tokens   tokens per window (default the tokenizer's limit, at most 512)
    max_windows  a long text is read in overlapping windows, at most this many (default 8: the first ones and the
                 last one — an answer's harm is often at its end)

Probabilities are per-label sigmoids for a multi-label model (``problem_type = "multi_label_classification"``),
else a softmax; a label's score is its highest over the windows. The model runs in a worker thread, one text at a
time per checker. Like the judge it reads whole texts only: on a stream, each answer as it finishes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .checkers import CHECKER_KINDS, BuildContext, Hit

MAX_TOKENS = 512


class Classifier:
    incremental = False
    before = 0

    def holdback(self, text: str) -> int:
        return 0  # whole texts only: never asked about a stream still growing

    def __init__(
        self,
        name: str,
        directory: str,
        labels: dict[str, str],
        *,
        threshold: float = 0.5,
        max_tokens: int | None = None,
        max_windows: int = 8,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer  # heavy: only when configured

        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True).eval()
        known = {str(label): int(index) for index, label in self.model.config.id2label.items()}
        unknown = sorted(set(labels) - set(known))
        if unknown:
            raise ValueError(
                f"moderation checker {name!r}: the model has no label {unknown[0]!r}; its labels: "
                + ", ".join(sorted(known))
            )
        self.categories = {known[label]: category for label, category in labels.items()}
        self.labels = {index: label for label, index in known.items()}
        self.threshold = threshold
        self.multi_label = self.model.config.problem_type == "multi_label_classification"
        limit = min(
            int(getattr(self.tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS),
            int(getattr(self.model.config, "max_position_embeddings", MAX_TOKENS) or MAX_TOKENS),
            MAX_TOKENS,
        )
        self.max_tokens = min(max_tokens or limit, limit)
        self.max_windows = max(1, max_windows)
        self._lock = asyncio.Lock()

    async def check(self, text: str, *, partial: bool = False) -> list[Hit]:
        if partial or not text.strip():
            return []
        async with self._lock:  # one text at a time: requests wait here, not in the thread pool
            scores = await asyncio.to_thread(self.scores, text)
        best: dict[str, tuple[float, int]] = {}
        for index, category in self.categories.items():
            if scores[index] >= self.threshold and scores[index] > best.get(category, (-1.0, 0))[0]:
                best[category] = (scores[index], index)
        return [
            Hit(self.name, category, f"{self.labels[index]} {score:.2f}") for category, (score, index) in best.items()
        ]

    def scores(self, text: str) -> list[float]:
        """Each label's probability: the highest over ``text``'s windows (blocking: a worker thread)."""
        import torch

        encoded = self.tokenizer(
            text,
            truncation=True,
            max_length=self.max_tokens,
            stride=self.max_tokens // 8,
            return_overflowing_tokens=True,
            padding=True,
            return_tensors="pt",
        )
        windows = list(range(encoded["input_ids"].shape[0]))
        if len(windows) > self.max_windows:
            windows = windows[: self.max_windows - 1] + windows[-1:]
        inputs = {k: v[windows] for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        probabilities = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return [float(p) for p in probabilities.max(dim=0).values]


@CHECKER_KINDS.register("classifier")
def classifier(name: str, options: dict[str, Any], context: BuildContext) -> Classifier:
    directory = options.get("model")
    if not isinstance(directory, str) or not Path(directory).is_dir():
        raise ValueError(f"moderation checker {name!r} (classifier) needs options.model, a model directory here")
    labels = options.get("labels")
    if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError(f"moderation checker {name!r} (classifier) needs options.labels: {{model label: category}}")
    threshold = float(options.get("threshold", 0.5))
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"moderation checker {name!r} (classifier): threshold is a probability, 0 to 1")
    max_tokens = options.get("max_tokens")
    return Classifier(
        name,
        directory,
        {str(k): v for k, v in labels.items()},
        threshold=threshold,
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        max_windows=int(options.get("max_windows", 8)),
    )
