"""A finished job's result files: the metrics of every progress report as CSV, and the loss curve (training and,
when a validation file was given, validation loss) as a PNG drawn with matplotlib's Agg backend."""

from __future__ import annotations

import csv
import io

from .trainers import Metrics

COLUMNS = (
    "step",
    "total_steps",
    "epoch",
    "trained_tokens",
    "train_loss",
    "valid_loss",
    "train_accuracy",
    "learning_rate",
    "tokens_per_second",
)


def metrics_csv(history: list[Metrics]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for m in history:
        row = (
            m.step,
            m.total_steps,
            m.epoch,
            m.trained_tokens,
            m.loss,
            m.eval_loss,
            m.accuracy,
            m.learning_rate,
            m.tokens_per_second,
        )
        writer.writerow(["" if value is None else value for value in row])
    return out.getvalue().encode()


def loss_curve_png(history: list[Metrics], title: str) -> bytes:
    """Training loss and validation loss against the step. Blocking (matplotlib): call it in a thread."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.add_subplot()
    train = [(m.step, m.loss) for m in history if m.loss is not None]
    valid = [(m.step, m.eval_loss) for m in history if m.eval_loss is not None]
    if train:
        axes.plot([s for s, _ in train], [v for _, v in train], label="training loss", marker=".")
    if valid:
        axes.plot([s for s, _ in valid], [v for _, v in valid], label="validation loss", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    if train or valid:
        axes.legend()
    axes.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
