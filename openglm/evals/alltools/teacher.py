"""The teacher: an engine that plays a competent model for the All Tools training data.

It is registered in the engine registry as ``teacher`` (by importing this module, before the app starts) and
answers each round from the task's ``Script``: given the prompt the agent rendered — the same text the student
model would be given, with the student's own chat template (read from its GGUF) and tool-call format — it finds
the task by its first user message, the turn by the user messages present, and the step by the tool results
since that turn began, and writes the step's call or answer. The prompt and reply of every round are kept with
the task (``Lesson``) so the generator can check its training lines render to exactly these prompts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...catalog import ModelSpec, resolve_source
from ...config import Settings
from ...engines.base import Engine, GenerationHandle, GenerationRequest, engines
from ...engines.scripted import CHARS_PER_TOKEN, ScriptedHandle
from ...errors import EngineError
from ...serving.toolcalls.base import ParsedCall, ToolCallParser
from .tasks import Answer, Call, Instance

MARK = "\x00"  # stands for a tool result's text, to find how the student's format wraps one


@dataclass
class Lesson:
    """One task being taught: its instance and what was said in each round."""

    instance: Instance
    prompts: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)  # the agent's chat request of each round
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

    def reply(self, prompt: str) -> str:
        lesson = self.find(prompt)
        try:
            text = self._next(lesson, prompt)
        except Exception as exc:  # a script that cannot go on (a search that missed): the lesson is dropped
            lesson.error = f"{type(exc).__name__}: {exc}"
            raise EngineError(f"teacher: {lesson.error}") from None
        lesson.prompts.append(prompt)
        lesson.replies.append(text)
        return text

    def _next(self, lesson: Lesson, prompt: str) -> str:
        assert self.parser is not None
        opening, closing = self.parser.render_result(MARK, None)[1].split(MARK)
        turns = lesson.instance.turns
        turn = max(i for i, text in enumerate(turns) if text in prompt)
        since = prompt[prompt.rindex(turns[turn]) :]
        observations = [piece.split(closing, 1)[0] for piece in since.split(opening)[1:]]
        step = lesson.instance.script[turn][len(observations)](observations)
        if isinstance(step, Answer):
            return step.text
        assert isinstance(step, Call)
        return self.parser.render_calls([ParsedCall(step.name, json.dumps(step.arguments, ensure_ascii=False))])


classroom = Classroom()


@engines.register("teacher")
class TeacherEngine(Engine):
    """Replies from ``classroom``; the chat format is the student's (``source``: its GGUF)."""

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.hints: dict[str, str] = {}

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

    async def submit(self, request: GenerationRequest) -> GenerationHandle:
        self.refuse_adapter(request)
        reply = classroom.reply(request.prompt)
        return ScriptedHandle(reply, max(1, len(request.prompt) // CHARS_PER_TOKEN), None)
