"""An eval run on disk: ``results.json`` (everything), ``report.md`` (tables, models side by side) and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import Outcome, Suite
from .runner import EvalRun

FAILURES_SHOWN = 5  # per suite and model, in the Markdown report


def write_report(run: EvalRun, suites: Sequence[Suite], out_dir: Path) -> Path:
    """Write the run's files under ``out_dir``; the Markdown report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(run.to_json(), indent=1, ensure_ascii=False))
    plots: dict[str, list[Path]] = {}
    for suite in suites:
        results = run.results.get(suite.name, {})
        plots[suite.name] = [family_plot(suite.name, results, out_dir), *suite.plots(results, out_dir)]
    report = out_dir / "report.md"
    report.write_text(markdown(run, suites, plots, out_dir))
    return report


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "–"


def markdown(run: EvalRun, suites: Sequence[Suite], plots: dict[str, list[Path]], out_dir: Path) -> str:
    lines = [
        "# Evaluation report",
        "",
        f"Server {run.server}; started {run.started}, {run.wall_s:.0f} s; seed {run.seed}; "
        f"split {run.split or 'all'}; tasks per family {run.per_family or 'all'}"
        + (f"; families {', '.join(run.families)}." if run.families else "."),
        "",
    ]
    for suite in suites:
        summaries = run.summaries.get(suite.name, {})
        lines += [f"## {suite.name}", "", suite.description, ""]
        lines += [
            "| model | score | held-out | train | tasks | errors | p50 latency |",
            "|---|---|---|---|---|---|---|",
        ]
        for model, summary in summaries.items():
            lines.append(
                f"| {model} | {_pct(summary.get('score'))} | {_pct(summary.get('heldout'))} | "
                f"{_pct(summary.get('train'))} | {summary.get('tasks', 0)} | {summary.get('errors', 0)} | "
                f"{summary.get('latency_p50_s', 0):.2f} s |"
            )
        lines += ["", *family_table(summaries), ""]
        extra: dict[str, dict[str, float]] = {m: s["metrics"] for m, s in summaries.items() if s.get("metrics")}
        columns = list(dict.fromkeys(name for metrics in extra.values() for name in metrics))
        if extra:
            lines += ["| model | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
            lines += [
                f"| {m} | " + " | ".join(_number(metrics.get(c)) for c in columns) + " |"
                for m, metrics in extra.items()
            ]
            lines.append("")
        for plot in plots.get(suite.name, []):
            lines += [f"![{plot.stem}]({plot.relative_to(out_dir)})", ""]
        for model, outcomes in run.results.get(suite.name, {}).items():
            failed = [o for o in outcomes if not o.passed][:FAILURES_SHOWN]
            if failed:
                lines += [f"Failures of {model} (first {len(failed)}):", ""]
                lines += [f"- `{o.task_id}` ({o.family}): {o.error or o.detail}" for o in failed]
                lines.append("")
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def family_table(summaries: dict[str, dict[str, Any]]) -> list[str]:
    models = list(summaries)
    families = sorted({f for s in summaries.values() for f in s.get("families", {})})
    if not families:
        return []
    splits: dict[str, str] = next((s.get("family_splits", {}) for s in summaries.values()), {})
    lines = ["| family | split | " + " | ".join(models) + " |", "|---|---" + "|---" * len(models) + "|"]
    for family in families:
        cells = [_pct(summaries[m].get("families", {}).get(family)) for m in models]
        lines.append(f"| {family} | {splits.get(family, '')} | " + " | ".join(cells) + " |")
    return lines


def family_plot(suite: str, results: dict[str, list[Outcome]], out_dir: Path) -> Path:
    """Score per family, models side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({o.family for outcomes in results.values() for o in outcomes})
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(families) * max(1, len(results))), 4))
    width = 0.8 / max(1, len(results))
    for n, (model, outcomes) in enumerate(results.items()):
        scores = []
        for family in families:
            group = [o.score for o in outcomes if o.family == family]
            scores.append(100 * sum(group) / len(group) if group else 0.0)
        axes.bar([i + n * width for i in range(len(families))], scores, width, label=model)
    axes.set_xticks(
        [i + width * (len(results) - 1) / 2 for i in range(len(families))], families, rotation=40, ha="right"
    )
    axes.set_ylabel("score (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"{suite}: score per family")
    axes.legend()
    figure.tight_layout()
    path = out_dir / "plots" / f"{suite}-families.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
