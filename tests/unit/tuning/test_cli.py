"""``openglm finetune``'s pure parts: the server's line-numbered problems split one per line, the progress bar
fitted to the terminal, and what a terminal and a pipe are shown. The commands against the real server:
tests/integration/test_fine_tuning_cli.py."""

from __future__ import annotations

import io
from typing import Any

from openglm.tuning.cli import Display, Progress, problems_of

INVALID = (
    "the training file is not a valid supervised training file: line 2: messages: no assistant message; "
    "line 3: messages[0]: role must be one of system, user, assistant, tool; line 5: messages[0]: tool_call_id "
    "'nope' answers no earlier call (and 17 more lines with problems)"
)


def test_a_files_problems_are_split_one_per_line() -> None:
    head, lines = problems_of(INVALID)
    assert head == "the training file is not a valid supervised training file"
    assert lines == [
        "line 2: messages: no assistant message",
        "line 3: messages[0]: role must be one of system, user, assistant, tool",
        "line 5: messages[0]: tool_call_id 'nope' answers no earlier call",
        "(and 17 more lines with problems)",
    ]
    assert problems_of("line 3 is not a JSON object") == ("line 3 is not a JSON object", [])  # an upload's one
    assert problems_of("model 'x' does not exist") == ("model 'x' does not exist", [])


def metrics(step: int, total: int = 8, **more: Any) -> dict[str, Any]:
    data = {
        "step": step,
        "total_steps": total,
        "epoch": step / 4,
        "train_loss": 2.0 / step,
        "tokens_per_second": 1234.5,
    }
    return {
        "id": f"ftevent-x-{step}",
        "type": "metrics",
        "level": "info",
        "message": f"step {step}",
        "data": data | more,
    }


def test_the_bar_fits_the_terminal_and_says_step_loss_speed_and_eta() -> None:
    progress = Progress.of(metrics(4, valid_loss=0.75, remaining_time="00:01:05")["data"])
    wide = progress.bar(120)
    assert wide.startswith("[" + "#" * 10) and "] " in wide and len(wide) <= 120
    for part in ("50%", "step 4/8", "epoch 1.00", "loss 0.5000", "eval loss 0.7500", "1,234 tok/s", "ETA 00:01:05"):
        assert part in wide
    assert len(progress.bar(40)) <= 40 and progress.bar(40).startswith("[")  # cut, never wrapped
    assert Progress.of({"current_steps": 3, "total_steps": 6, "loss": 1.5}).summary() == "step 3/6  loss 1.5000"


def test_a_pipe_gets_one_line_per_event_and_a_terminal_a_bar_redrawn_in_place() -> None:
    events = [
        {"id": "e1", "type": "message", "level": "info", "message": "training on 2 examples"},
        metrics(1),
        metrics(2),
        {**metrics(2), "message": "checkpoint at step 2"},  # the same step again: its message
        {"id": "e9", "type": "message", "level": "warn", "message": "result files not kept"},
    ]
    plain = io.StringIO()
    display = Display(plain, tty=False)
    for event in events:
        display.event(event)
    display.close()
    lines = plain.getvalue().splitlines()
    assert lines[0] == "training on 2 examples" and lines[1].startswith("step 1/8  epoch 0.25  loss 2.0000")
    assert lines[3:] == ["checkpoint at step 2", "warn: result files not kept"] and "\r" not in plain.getvalue()

    screen = io.StringIO()
    display = Display(screen, tty=True)
    for event in events:
        display.event(event)
    display.close()
    text = screen.getvalue()
    assert text.count("\r[") == 2 and text.count("step 1/8") == 1  # each step drawn over the last
    assert text.count("step 2/8") == 3  # and the bar drawn again under each message
    assert text.endswith("\n") and "step 2/8" in text.rsplit("\r", 1)[1]  # the last frame stays on screen
    assert "checkpoint at step 2\n" in text and "warn: result files not kept\n" in text
