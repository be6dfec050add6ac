"""What a suite is: tasks, how one task is run against a model through the API, how outcomes are summarized.

Suites register in ``eval_suites`` under their name. A task belongs to a *family* (the template it was made
from) and a *split*: ``train`` families may appear in training data, ``heldout`` families never do, so a held-out
score measures generalisation to phrasings and sub-tasks the model was not tuned on.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:
    from .client import EvalClient
    from .environment import EvalEnvironment

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class Task:
    id: str
    family: str
    split: str  # "train" | "heldout" (suites without training data use "heldout")
    data: dict[str, Any]


@dataclass
class Outcome:
    """One task run against one model."""

    task_id: str
    family: str
    split: str
    passed: bool
    score: float  # 0..1; pass/fail suites use 1.0 / 0.0
    latency_s: float = 0.0
    tools: list[str] = field(default_factory=list)  # the tools and functions the model called, in order
    detail: str = ""  # why it failed, or what was measured
    error: str | None = None  # the API refused or failed (an error is a failure, never a skip)
    metrics: dict[str, float] = field(default_factory=dict)  # suite-specific numbers (recall@k, context length…)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Suite(abc.ABC):
    name: str = ""
    description: str = ""
    # What the server needs for this suite: "chat", "alltools" (an agent with tools), "knowledge", "browser"…
    needs: tuple[str, ...] = ("chat",)

    @abc.abstractmethod
    def tasks(self, seed: int = 0) -> list[Task]:
        """Every task of the suite, deterministically from ``seed``."""

    @abc.abstractmethod
    async def run(self, task: Task, model: str, client: EvalClient, env: EvalEnvironment) -> Outcome:
        """Run one task against ``model`` (a catalog model, agent, GLM-less ft: model) through the API."""

    def summarize(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """Headline numbers of one model's outcomes: the score overall, per split and per family."""
        return default_summary(outcomes)

    def plots(self, results: dict[str, list[Outcome]], out_dir: Path) -> list[Path]:
        """PNG plots of the models' outcomes (by model name); none by default."""
        return []


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def default_summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    by_family: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_family.setdefault(outcome.family, []).append(outcome)
    summary: dict[str, Any] = {
        "score": mean([o.score for o in outcomes]),
        "tasks": len(outcomes),
        "errors": sum(1 for o in outcomes if o.error),
        "latency_p50_s": median([o.latency_s for o in outcomes]),
        "families": {name: mean([o.score for o in group]) for name, group in sorted(by_family.items())},
        "family_splits": {name: group[0].split for name, group in sorted(by_family.items())},
    }
    for split in SPLITS:
        chosen = [o.score for o in outcomes if o.split == split]
        if chosen:
            summary[split] = mean(chosen)
    return summary


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


eval_suites: Registry[type[Suite]] = Registry("eval suite")


def load_suites() -> None:
    """Import the built-in suites: every module of ``evals/suites`` registers one."""
    import importlib
    import pkgutil

    from . import suites

    for module in pkgutil.iter_modules(suites.__path__):
        importlib.import_module(f"{suites.__name__}.{module.name}")


def get_suite(name: str) -> Suite:
    load_suites()
    return eval_suites.get(name)()
