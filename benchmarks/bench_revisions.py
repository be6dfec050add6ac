#!/usr/bin/env python
"""Two source trees of OpenGLM on the serving benchmark, alternately: did a change make the chat path slower?

Each round runs ``bench_serving.py --only openglm`` once with the server imported from ``--before`` and once from
``--after`` (``PYTHONPATH``, from a neutral working directory, so neither tree shadows the other), in alternating
order; the report gives each side's medians over the rounds and the ratio after / before.

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/bench_revisions.py --before /tmp/before --after . --concurrency 16 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METRICS = ("agg_tok_s", "ttft_p50_ms", "ttft_p99_ms", "decode_tok_s_p50")


def one_run(tree: Path, concurrency: str, extra: list[str], out: Path) -> dict[str, Any]:
    # A data directory of its own: the two trees may be at different database migrations.
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OPENGLM_DATA_DIR": str(out.with_suffix(".data"))}
    command = [sys.executable, str(HERE / "bench_serving.py"), "--only", "openglm", "--repeats", "1"]
    command += ["--concurrency", concurrency, "--out", str(out), *extra]
    subprocess.run(command, env=env, cwd=tempfile.gettempdir(), check=True, stdout=subprocess.DEVNULL)
    summary: dict[str, Any] = json.loads(out.read_text())["summary"]["openglm"]
    return summary


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--concurrency", default="16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / f"revisions-{dt.date.today().isoformat()}.json")
    args, extra = parser.parse_known_args()
    sides: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as scratch:
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for side in order:
                loads.append(load_average())
                tree = args.before if side == "before" else args.after
                sides[side].append(one_run(tree, args.concurrency, extra, Path(scratch) / f"{side}-{round_}.json"))
                print(f"round {round_ + 1} {side}: {sides[side][-1]}", file=sys.stderr)
    report: dict[str, Any] = {}
    for level in args.concurrency.split(","):
        row: dict[str, Any] = {}
        for metric in METRICS:
            values = {
                s: [v for r in runs if (v := r["levels"][level][metric]) is not None] for s, runs in sides.items()
            }
            medians = {s: statistics.median(v) if v else None for s, v in values.items()}
            ratio = medians["after"] / medians["before"] if medians["before"] and medians["after"] else None
            row[metric] = {"before": medians["before"], "after": medians["after"], "after/before": ratio}
        report[level] = row
    payload = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "command": [sys.executable, *sys.argv],
        "before": str(args.before),
        "after": str(args.after),
        "load_average_1m": loads,
        "report": report,
        "runs": sides,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    for level, row in report.items():
        print(f"concurrency {level}")
        for metric, values in row.items():
            print(f"  {metric:18} before {values['before']}  after {values['after']}  ratio {values['after/before']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
