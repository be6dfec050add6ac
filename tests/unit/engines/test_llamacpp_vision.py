"""The llama.cpp engine reading images with a model's projector (``engines/llamacpp/vision.py``), on the tiny random
text model and a tiny random LLaVA-type projector generated here (tests/fixtures/tiny_mmproj.py): llama.cpp's
multimodal library decodes, encodes and projects each image, and the scheduler decodes its embeddings in place."""

from __future__ import annotations

import asyncio
import difflib
import logging
from pathlib import Path
from typing import Any

import pytest

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.engines.base import GenerationRequest, SamplingParams
from openglm.engines.llamacpp import LlamaCppEngine
from openglm.errors import InvalidFieldError

from ...fixtures.cores import TEST_THREADS
from ...fixtures.image_server import png
from ...fixtures.tiny_mmproj import N_PATCHES, write_tiny_mmproj
from ...fixtures.tiny_model import N_EMBD

# Greedy, never ending early (<|endoftext|> and <|im_end|> banned): every answer is as long as asked.
GREEDY = SamplingParams(temperature=0.0, logprobs=True, logit_bias={0: -100.0, 2: -100.0})
MARKER = "<image-test>"


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mmproj(tmp_path_factory.mktemp("mmproj") / "tiny-mmproj.gguf", projection=N_EMBD)


RED, BLUE = png(40, 40, (220, 30, 30)), png(40, 40, (30, 30, 220))


def prompt(question: str, images: int = 1) -> str:
    pictures = MARKER * images
    return f"<|im_start|>user\n{pictures}\n{question}<|im_end|>\n<|im_start|>assistant\n"


def engine(gguf: Path, mmproj: Path, **options: Any) -> LlamaCppEngine:
    spec = ModelSpec(
        id="v", source=str(gguf), mmproj=str(mmproj), context_length=1024, options={"threads": TEST_THREADS, **options}
    )
    return LlamaCppEngine(spec, Settings())


async def generate(eng: LlamaCppEngine, text: str, images: tuple[bytes, ...], max_tokens: int = 12) -> dict[str, Any]:
    request = GenerationRequest(text, GREEDY, max_tokens, images=images, image_marker=MARKER)
    handle = await eng.submit(request)
    pieces, logprobs = [], []
    async for chunk in handle:
        pieces.append(chunk.text)
        logprobs += [round(lp.logprob, 4) for lp in chunk.logprobs]
    return {"text": "".join(pieces), "logprobs": logprobs, "prompt_tokens": handle.prompt_tokens}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_model_with_mmproj_is_a_vision_model_and_only_on_llamacpp(tmp_path: Path) -> None:
    assert ModelSpec(id="v", source="x.gguf", mmproj="p.gguf").vision is True
    with pytest.raises(ValueError, match="mmproj is for the llamacpp engine"):
        ModelSpec(id="v", engine="remote", source="http://127.0.0.1:1", mmproj="p.gguf")


def test_images_take_their_positions_and_change_the_answer(tiny_gguf: Path, mmproj: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        eng = engine(tiny_gguf, mmproj, prefix_cache=False)
        await eng.start()
        try:
            plain = await eng.count_tokens(prompt("What is this?", images=0))
            red = await generate(eng, prompt("What is this?"), (RED,))
            red_again = await generate(eng, prompt("What is this?"), (RED,))
            blue = await generate(eng, prompt("What is this?"), (BLUE,))
            both = await generate(eng, prompt("What is this?", images=2), (RED, BLUE))
            return [{"plain": plain}, red, red_again, blue, both]
        finally:
            await eng.stop()

    counts, red, red_again, blue, both = run(scenario())
    # Each image stands for its embeddings (4 positions), however the text around the markers splits.
    assert red["prompt_tokens"] == blue["prompt_tokens"]
    assert abs(red["prompt_tokens"] - (counts["plain"] + N_PATCHES)) <= 2
    assert both["prompt_tokens"] == red["prompt_tokens"] + N_PATCHES
    assert red == red_again  # the same image, the same answer
    assert red["logprobs"] != blue["logprobs"]  # the model read the image, not a placeholder


def test_a_prefix_with_an_image_is_reused_only_with_that_image(tiny_gguf: Path, mmproj: Path) -> None:
    async def answers(prefix_cache: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
        eng = engine(tiny_gguf, mmproj, prefix_cache=prefix_cache)
        await eng.start()
        try:
            out = [
                await generate(eng, prompt("Describe it in a few words."), (RED,)),
                await generate(eng, prompt("Describe it in a few words, please."), (RED,)),
                await generate(eng, prompt("Describe it in a few words, please."), (BLUE,)),
            ]
            return out, eng.stats()
        finally:
            await eng.stop()

    cached, stats = run(answers(True))
    fresh, _ = run(answers(False))
    assert cached == fresh  # reuse never changes an answer: the blue image was not taken for the red one
    assert stats["reused_prompt_tokens"] >= N_PATCHES + 4  # the red image and the text after it, read once


def test_images_survive_preemption_under_kv_pressure(
    tiny_gguf: Path, mmproj: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A preempted sequence is recomputed with its image: its answer goes on as the unpreempted one does. Not
    token for token: llama.cpp's CPU kernels are not batch-invariant (the recompute prefills in one batch what was
    decoded a token at a time), so on this tiny random model a near-tie can flip late in a long answer. A lost or
    swapped image changes the whole answer (the control below), far past that tolerance."""
    questions = [f"Question number {i}: what colour is shown here, and why?" for i in range(6)]
    images = [(RED,), (BLUE,)] * 3
    swapped = [(BLUE,), (RED,)] * 3

    async def together(kv_tokens: int, parallel: int, pictures: list[tuple[bytes, ...]]) -> list[str]:
        eng = engine(tiny_gguf, mmproj, kv_tokens=kv_tokens, parallel=parallel, prefix_cache=False)
        await eng.start()
        try:
            jobs = [generate(eng, prompt(q), i, max_tokens=100) for q, i in zip(questions, pictures, strict=True)]
            return [answer["text"] for answer in await asyncio.gather(*jobs)]
        finally:
            await eng.stop()

    roomy = run(together(4096, 6, images))
    control = run(together(4096, 6, swapped))
    with caplog.at_level(logging.INFO, logger="openglm.engines.llamacpp.scheduler"):
        tight = run(together(200, 6, images))  # two sequences are let in, then outgrow it: one is preempted, recomputed
    assert "preempting" in caplog.text
    assert all(similarity(t, r) >= 0.9 for t, r in zip(tight, roomy, strict=True)), (tight, roomy)
    assert all(similarity(c, r) <= 0.5 for c, r in zip(control, roomy, strict=True)), (control, roomy)


def similarity(a: str, b: str) -> float:
    """How much of two answers' words agree in order (1.0: the same answer)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def test_bytes_that_are_not_an_image_are_refused_before_any_output(tiny_gguf: Path, mmproj: Path) -> None:
    async def scenario() -> None:
        eng = engine(tiny_gguf, mmproj)
        await eng.start()
        try:
            with pytest.raises(InvalidFieldError, match="image 2"):
                await generate(eng, prompt("Compare them.", images=2), (RED, b"\x89PNG\r\n\x1a\nnot really"))
            with pytest.raises(InvalidFieldError, match="does not place"):
                await generate(eng, prompt("One marker."), (RED, BLUE))
            assert (await generate(eng, prompt("Still fine?"), (BLUE,)))["text"]  # the engine goes on
            assert eng.stats()["active"] == 0
        finally:
            await eng.stop()

    run(scenario())
