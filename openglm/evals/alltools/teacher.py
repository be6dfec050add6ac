"""The teacher: an engine that plays a competent model for the All Tools training data.

It is registered in the engine registry as ``teacher`` (by importing this module, before the app starts) and
answers each round from the task's ``Script``: given the prompt the agent rendered — the same text the student
model would be given, with the student's own chat template (read from its GGUF) and tool-call format — it finds
the task by its first user message, the turn by the user messages present, and the step by the tool results
since that turn began, and writes the step's call or answer. The prompt and reply of every round are kept with
the task (``Lesson``) so the generator can check its training lines render to exactly these prompts.

A ``Rehearse`` step is answered by the student's own base model (llama.cpp, greedy, one sequence at a time so
the answer does not depend on what else is decoding): rehearsal lessons teach the adapter to leave plain
requests as the base answers them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from ...catalog import ModelSpec, resolve_source
from ...config import Settings
from ...engines.base import Engine, GenerationHandle, GenerationRequest, SamplingParams, engines
from ...engines.scripted import CHARS_PER_TOKEN, ScriptedHandle
from ...errors import EngineError
from ...serving.toolcalls.base import ParsedCall, ToolCallParser
from .tasks import Answer, Call, Instance, Rehearse

MARK = "\x00"  # stands for a tool result's text, to find how the student's format wraps one


@dataclass
class Lesson:
    """One task being taught: its instance and what was said in each round."""

    instance: Instance
    prompts: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # the agent's chat request of each round
    rehearsed: dict[str, str] = field(default_factory=dict)  # prompt → the base model's answer (asked once)
    error: str | None = None

    @property
    def key(self) -> str:
        return self.instance.turns[0]


class Classroom:
    """The lessons in progress, shared by the teacher engine and the recorder of the agent's requests."""

    def __init__(self) -> None:
        self.lessons: dict[str, Lesson] = {}
        self.parser: ToolCallParser | None = None

    def open(self, instance: Instance) -> Lesson:
        if instance.turns[0] in self.lessons:
            raise ValueError(f"a lesson for {instance.turns[0]!r} is already open")
        lesson = self.lessons[instance.turns[0]] = Lesson(instance)
        return lesson

    def close(self, lesson: Lesson) -> None:
        self.lessons.pop(lesson.key, None)

    def find(self, prompt: str) -> Lesson:
        found = [lesson for key, lesson in self.lessons.items() if key in prompt]
        if len(found) != 1:
            raise EngineError(f"the teacher found {len(found)} lessons for this prompt")
        return found[0]

    def step(self, prompt: str) -> tuple[Lesson, str | Rehearse]:
        """The lesson ``prompt`` belongs to, and its next reply (or the rehearsal that writes it)."""
        lesson = self.find(prompt)
        try:
            return lesson, self._next(lesson, prompt)
        except Exception as exc:  # a script that cannot go on (a search that missed): the lesson is dropped
            lesson.error = f"{type(exc).__name__}: {exc}"
            raise EngineError(f"teacher: {lesson.error}") from None

    def keep(self, lesson: Lesson, prompt: str, reply: str) -> None:
        lesson.prompts.append(prompt)
        lesson.replies.append(reply)

    def _next(self, lesson: Lesson, prompt: str) -> str | Rehearse:
        assert self.parser is not None
        opening, closing = self.parser.render_result(MARK, None)[1].split(MARK)
        turns = lesson.instance.turns
        turn = max(i for i, text in enumerate(turns) if text in prompt)
        since = prompt[prompt.rindex(turns[turn]) :]
        observations = [piece.split(closing, 1)[0] for piece in since.split(opening)[1:]]
        step = lesson.instance.script[turn][len(observations)](observations)
        if isinstance(step, Answer):
            return step.text
        if isinstance(step, Rehearse):
            return step
        assert isinstance(step, Call)
        return self.parser.render_calls([ParsedCall(step.name, json.dumps(step.arguments, ensure_ascii=False))])


classroom = Classroom()


@engines.register("teacher")
class TeacherEngine(Engine):
    """Replies from ``classroom``; the chat format is the student's (``source``: its GGUF)."""

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.settings = settings
        self.hints: dict[str, str] = {}
        self._student: Engine | None = None  # the base model, loaded for the first rehearsal
        self._loading = asyncio.Lock()

    async def start(self) -> None:
        from ...engines.llamacpp.model import LlamaModel

        model = LlamaModel(resolve_source(self.spec.source), vocab_only=True)
        try:
            self.hints = {
                "architecture": model.architecture,
                "chat_template": model.chat_template or "",
                "bos_token": model.bos_text,
                "eos_token": model.eos_text,
            }
        finally:
            model.close()

    def template_hints(self) -> dict[str, str]:
        return self.hints

    async def stop(self) -> None:
        if self._student is not None:
            await self._student.stop()

    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        self.refuse_adapter(request)
        lesson, step = classroom.step(request.prompt)
        reply = step if isinstance(step, str) else await self._rehearsed(lesson, request.prompt, step.max_tokens)
        classroom.keep(lesson, request.prompt, reply)
        return ScriptedHandle(reply, max(1, len(request.prompt) // CHARS_PER_TOKEN), None)

    async def _rehearsed(self, lesson: Lesson, prompt: str, max_tokens: int) -> str:
        """The base model's greedy answer to ``prompt``, as the student would be given it (made once a prompt)."""
        if prompt not in lesson.rehearsed:
            lesson.rehearsed[prompt] = await self._base_answer(prompt, max_tokens)
        return lesson.rehearsed[prompt]

    async def _base_answer(self, prompt: str, max_tokens: int) -> str:
        async with self._loading:
            if self._student is None:
                from ...engines.llamacpp import LlamaCppEngine

                options = {"parallel": 1, "prefix_cache": False}  # one sequence at a time: the same answer each run
                spec = ModelSpec(id=f"{self.spec.id}-student", source=self.spec.source, options=options)
                student = LlamaCppEngine(spec, self.settings)
                await student.start()
                self._student = student
        handle = await self._student.submit(GenerationRequest(prompt, SamplingParams(temperature=0.0), max_tokens))
        return "".join([chunk.text async for chunk in handle])
