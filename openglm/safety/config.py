"""The operator's content-safety settings, as the catalog file writes them (``[safety]``, ``[[safety.checkers]]``
and a model's ``safety``). Plain data: what each name builds is ``checkers.py``'s business."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LIST = "package:openglm/safety/lists/default.toml"


class CheckerSpec(BaseModel):
    """One configured checker: ``kind`` names a registered checker kind, ``options`` are its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


def default_checkers() -> list[CheckerSpec]:
    return [CheckerSpec(name="words", kind="words", options={"lists": [DEFAULT_LIST]})]


class SafetyConfig(BaseModel):
    """``input``: checkers every request's input passes before the engine; ``output``: checkers the answer passes
    as it is written (a checker that cannot read a stream as it grows — the LLM judge — checks whole answers only).
    A model's own ``safety`` replaces either list for that model."""

    model_config = ConfigDict(extra="forbid")

    checkers: list[CheckerSpec] = Field(default_factory=default_checkers)
    input: list[str] = Field(default_factory=lambda: ["words"])
    output: list[str] = Field(default_factory=lambda: ["words"])
    # Checkers ``POST /moderations`` uses when its request names no model (a name here or a judge's model).
    moderations: list[str] = Field(default_factory=lambda: ["words"])


class ModelSafety(BaseModel):
    """A catalog model's own checkers (``safety = {input = [...], output = [...]}``): None keeps the default."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] | None = None
    output: list[str] | None = None
