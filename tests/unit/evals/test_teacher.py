"""The teacher engine (``evals/alltools/teacher.py``): a rehearsal step is answered by the student's own base model,
greedy, on the very prompt the agent rendered — on the tiny random model (tests/fixtures/tiny_model.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openglm.catalog import ModelSpec
from openglm.config import Settings
from openglm.engines.base import GenerationRequest, SamplingParams
from openglm.engines.llamacpp import LlamaCppEngine
from openglm.evals.alltools.tasks import Answer, Expect, Instance, Rehearse, fixed
from openglm.evals.alltools.teacher import TeacherEngine, classroom
from openglm.serving.toolcalls.base import get_parser

from ...fixtures.cores import TEST_THREADS

QUESTION = "Explain how a kite flies."
PROMPT = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"


async def _text(engine: TeacherEngine | LlamaCppEngine, request: GenerationRequest) -> str:
    return "".join([chunk.text async for chunk in await engine.submit(request)])


def test_a_rehearsal_is_the_base_models_own_greedy_answer(tiny_gguf: Path) -> None:
    async def scenario() -> tuple[str, str, str, list[str], int]:
        base = LlamaCppEngine(
            ModelSpec(id="base", source=str(tiny_gguf), options={"threads": TEST_THREADS}), Settings()
        )
        await base.start()
        try:
            direct = await _text(base, GenerationRequest(PROMPT, SamplingParams(temperature=0.0), 16))
        finally:
            await base.stop()
        teacher = TeacherEngine(ModelSpec(id="teacher", engine="teacher", source=str(tiny_gguf)), Settings())
        await teacher.start()
        lesson = classroom.open(Instance([QUESTION], Expect(None), [fixed(Rehearse(16))]))
        try:
            # The agent's sampling is not the teacher's: a rehearsal is greedy whatever the request asks.
            first = await _text(teacher, GenerationRequest(PROMPT, SamplingParams(temperature=0.9), 400))
            again = await _text(teacher, GenerationRequest(PROMPT, SamplingParams(temperature=0.9), 400))
            return direct, first, again, lesson.replies, len(lesson.rehearsed)
        finally:
            classroom.close(lesson)
            await teacher.stop()

    classroom.parser = get_parser("hermes")([])
    direct, first, again, replies, rehearsed = asyncio.run(scenario())
    assert direct and first == direct and again == direct
    assert replies == [direct, direct] and rehearsed == 1  # asked twice (the agent plans a round twice), made once


def test_a_scripted_answer_is_not_rehearsed(tiny_gguf: Path) -> None:
    async def scenario() -> str:
        teacher = TeacherEngine(ModelSpec(id="teacher", engine="teacher", source=str(tiny_gguf)), Settings())
        await teacher.start()
        lesson = classroom.open(Instance([QUESTION], Expect(None), [fixed(Answer("It rides the wind."))]))
        try:
            return await _text(teacher, GenerationRequest(PROMPT, SamplingParams(temperature=0.0), 16))
        finally:
            classroom.close(lesson)
            await teacher.stop()

    classroom.parser = get_parser("hermes")([])
    assert asyncio.run(scenario()) == "It rides the wind."
