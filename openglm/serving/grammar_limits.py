"""Bounds on what a grammar may cost, checked before anything is built from a user's schema or GBNF.

The JSON-schema converter expands every bound into rules: ``"maxLength": n`` becomes n nested optional
characters (``maxLength`` 10^9 was a multi-gigabyte string that got the server OOM-killed), and llama.cpp's GBNF
parser recurses once per parenthesis (a few tens of thousands nested crash it on the C stack) and copies an item
once per repetition of ``x{m,n}``. So a schema is walked first (iteratively, stopping at the first excess) and
its bounds and their sum are capped; a GBNF text (produced here, or given raw to ``/completions``) is scanned for
its size, its nesting and an estimate of the rules llama.cpp will expand it to. Every excess is a 400 (1214) that
names the limit. The limits sit above what real schemas use (llama.cpp itself accepts at most about a thousand
nested optional items, so ``maxLength`` 1000 is what it can honour anyway) and below what costs the server more
than a few milliseconds and megabytes to compile (``benchmarks/bench_grammar.py`` measures the worst accepted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidFieldError

REPEAT_KEYWORDS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)
# {m}, {m,} or {m,n} in a regex pattern (an over-count inside a character class only makes the check stricter).
_QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


@dataclass(frozen=True)
class GrammarLimits:
    max_depth: int = 32  # nested objects and arrays in the schema document
    max_nodes: int = 5000  # values in the schema document
    max_repeat: int = 1000  # any one minLength/maxLength/minItems/maxItems/... or {m,n} in a pattern
    max_repeat_total: int = 8000  # the sum of all of them: each becomes that many grammar rules
    max_properties: int = 128  # per object (the converter's work on optional properties grows with their square)
    max_enum: int = 1024
    max_pattern: int = 1000  # characters in one pattern
    max_refs: int = 256
    max_gbnf_bytes: int = 512 * 1024
    max_gbnf_nesting: int = 1500  # parentheses inside one another (llama.cpp's parser recurses on each)
    max_gbnf_elements: int = 300_000  # rule elements after llama.cpp expands repetitions (about 170 B each)


LIMITS = GrammarLimits()


def check_schema(schema: Any, where: str, limits: GrammarLimits = LIMITS) -> None:
    """Raises InvalidFieldError (naming the path and the limit) when converting ``schema`` could be costly."""
    nodes = refs = total = 0
    stack: list[tuple[Any, str, int]] = [(schema, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise _refused(where, "", f"the schema has more than {limits.max_nodes} values")
        if isinstance(value, dict):
            depth += 1
            if depth > limits.max_depth:
                raise _refused(where, path, f"the schema nests deeper than {limits.max_depth} levels")
            total += _object_cost(value, path, where, limits)
            refs += isinstance(value.get("$ref"), str)
            children: Any = ((f"{path}.{key}", child) for key, child in value.items())
        elif isinstance(value, list):
            depth += 1
            if depth > limits.max_depth:
                raise _refused(where, path, f"the schema nests deeper than {limits.max_depth} levels")
            children = ((f"{path}[{index}]", child) for index, child in enumerate(value))
        else:
            continue
        if refs > limits.max_refs:
            raise _refused(where, "", f"the schema has more than {limits.max_refs} $ref")
        if total > limits.max_repeat_total:
            raise _refused(
                where,
                "",
                f"the schema's length, item and repetition bounds add up to more than {limits.max_repeat_total}",
            )
        stack.extend((child, child_path, depth) for child_path, child in children)


def _object_cost(schema: dict[str, Any], path: str, where: str, limits: GrammarLimits) -> int:
    """The repetitions this (sub)schema's own keywords ask for; refuses any one that is too large."""
    cost = 0
    for keyword in REPEAT_KEYWORDS:
        bound = schema.get(keyword)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            if bound < 0 or bound > limits.max_repeat:
                raise _refused(where, f"{path}.{keyword}", f"must be between 0 and {limits.max_repeat}, not {bound}")
            cost += int(bound)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        if len(pattern) > limits.max_pattern:
            raise _refused(where, f"{path}.pattern", f"patterns may have at most {limits.max_pattern} characters")
        for match in _QUANTIFIER.finditer(pattern):
            times = max(int(match.group(1)), int(match.group(2) or 0))
            if times > limits.max_repeat:
                raise _refused(where, f"{path}.pattern", f"a repetition {match.group(0)} exceeds {limits.max_repeat}")
            cost += times
    enum = schema.get("enum")
    if isinstance(enum, list) and len(enum) > limits.max_enum:
        raise _refused(where, f"{path}.enum", f"at most {limits.max_enum} values")
    properties = schema.get("properties")
    if isinstance(properties, dict) and len(properties) > limits.max_properties:
        raise _refused(where, f"{path}.properties", f"at most {limits.max_properties} properties per object")
    return cost


def _refused(where: str, path: str, reason: str) -> InvalidFieldError:
    return InvalidFieldError(f"{where}{path}: {reason} (a limit on the grammar this schema compiles to)")


# GBNF tokens: comments, literals, character classes, grouping, repetition, names; anything else one character.
_GBNF_TOKEN = re.compile(
    r'#[^\n]*|"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[^}]*\}|[A-Za-z0-9_-]+|::=|\s+|.', re.DOTALL
)
_REPEAT = re.compile(r"\{\s*(\d*)\s*(?:(,)\s*(\d*)\s*)?\}")


def check_gbnf(text: str, where: str, limits: GrammarLimits = LIMITS) -> None:
    """Raises InvalidFieldError when llama.cpp's parser could recurse too deeply on ``text`` or expand it into
    too many rules: its size, its nesting of parentheses and an estimate of its expanded size are capped.

    The estimate follows llama.cpp's parser: a parenthesized group becomes a rule of its own (one reference where
    it stands), and a repetition copies the item before it (a literal, a character class or a reference) into a
    new rule per ``?``/``*``/``+`` and per optional repetition of ``{m,n}``, so costs add up rather than multiply.
    """
    if len(text.encode("utf-8", errors="replace")) > limits.max_gbnf_bytes:
        raise InvalidFieldError(f"{where}: the grammar is larger than {limits.max_gbnf_bytes // 1024} KiB")
    depth = elements = last = 0  # open parentheses, estimated elements so far, the size of the item before
    for match in _GBNF_TOKEN.finditer(text):
        token = match.group(0)
        first = token[0]
        if first == "#" or first.isspace() or token in ("|", "::="):
            continue
        if first == "(":
            depth += 1
            if depth > limits.max_gbnf_nesting:
                raise InvalidFieldError(
                    f"{where}: the grammar nests parentheses more than {limits.max_gbnf_nesting} deep"
                )
            continue
        if first == ")":
            depth = max(0, depth - 1)
            size = 1  # the reference to the group's rule
        elif first in "*+?":
            size = last + 2
        elif first == "{":
            size = _repetitions(token, where, limits) * (last + 2)
        else:  # a literal or a character class (an element per character, roughly), or a rule's name
            size = max(1, len(token) - 2) if first in '"[' else 1
        elements += size
        last = size if first not in "*+?{" else last
        if elements > limits.max_gbnf_elements:
            raise InvalidFieldError(
                f"{where}: the grammar expands to more than {limits.max_gbnf_elements:,} rule elements; "
                "use fewer or smaller repetitions"
            )


def _repetitions(token: str, where: str, limits: GrammarLimits) -> int:
    match = _REPEAT.fullmatch(token)
    if match is None:
        return 1  # not a repetition llama.cpp reads: its parser will refuse the grammar
    low = int(match.group(1) or 0)
    high = int(match.group(3)) if match.group(3) else (low if match.group(2) is None else low + 1)
    if max(low, high) > limits.max_repeat:
        raise InvalidFieldError(f"{where}: the repetition {token} exceeds {limits.max_repeat}")
    return max(low, high, 1)
