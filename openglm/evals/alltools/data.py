"""All Tools training data, made by running OpenGLM's real tools (``openglm eval data``).

The platform is started in this process on a loopback port with one extra catalog entry: ``teacher-alltools``,
an All Tools agent whose model is the teacher engine (``teacher.py``) in the student's chat format. Each
training-family task is driven through the HTTP API exactly as the eval drives it (``conversation.drive``): the
sandboxed kernel runs the code, the browser searches and opens the generated website (a world of its own seed,
never the eval's), the drawing tool calls the stand-in image model, the eval's user functions answer. A recorder
keeps the chat request of every round the agent made — its messages (with the tools' real observations) and the
tools it offered — and each final reply becomes one training line: that round's conversation plus the reply.
Every line is checked to render, with the fine-tuning renderer, to the very prompts the teacher was given.

Held-out families never run here. Lines are written in a fixed order with call ids renumbered, so the same
command writes the same file (its SHA-256 goes to the manifest, with the generator's version and the seed).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...catalog import Catalog, resolve_source
from ...config import Settings
from ...serving.messages import adapt_for_template, normalize_raw_messages
from ...tuning.render import Renderer, served_text
from ..client import EvalClient
from ..environment import EvalEnvironment
from .conversation import drive
from .tasks import Instance, families
from .teacher import Lesson, classroom
from .world import World

GENERATOR_VERSION = 12
# The versions this code still makes byte for byte (families gated by their ``since`` and ``until``, wordings by
# ``REWORDED_SINCE``, repeats by ``REPEATED_FUNCTIONS_SINCE``): the shipped adapter's data stays reproducible while
# the generator moves ahead of it.
VERSIONS = range(5, GENERATOR_VERSION + 1)
TRAIN_WORLD_BASE = 1000  # training worlds are seeds 1000+ (the eval's are named apart: World("eval-<seed>"))
# The training website's port: its URLs are in the observations and in the browser calls the lines teach, so a port
# chosen at random would make every run's file different. (The one the shipped adapter's data was made on.)
TRAIN_SITE_PORT = 34531
TEACHER_AGENT = "teacher-alltools"
# Lines of these categories are written this many times: requests that need no tool are a small share of the
# families, and a model that sees a tool called in 95 % of its lessons learns to call one for "hello". From version
# 8 function lessons twice too: the v6 adapter named a wrong function on the eval's own training wordings.
REPEATS = {"chat": 3}
REPEATED_FUNCTIONS_SINCE = 8
REPEATS_SINCE_8 = {"chat": 3, "function": 2}
# How people open or close a request, put around a third each of the tool lessons' first turns: a 135M model
# keys on the exact wordings it was taught, and every held-out request is worded anew. Drawn from a generator of its
# own, so each family's instances are the ones earlier versions made. Chat lessons are left as asked: their answers
# reply to the exact words.
OPENERS = ["Hi! ", "Hey, ", "Quick question: ", "Please help me with this. ", "Hello. ", "I have a task for you. "]
CLOSERS = [" Thanks!", " Thank you.", " Please.", " Can you do that?", " I'd appreciate it.", " Thanks in advance."]
REWORDED_SINCE = 6
TOOL_FAILED = "[the tool failed: "  # how the agent tells the model a tool raised (agent/loop.py)


@dataclass
class Manifest:
    generator_version: str
    seed: int
    per_family: int
    student: str
    command: str
    lines: int = 0
    sha256: str = ""
    families: dict[str, int] = field(default_factory=dict)
    family_sha256: dict[str, str] = field(default_factory=dict)  # of each family's lines, in order
    dropped: dict[str, list[str]] = field(default_factory=dict)  # family → why its instances were dropped

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def training_instances(
    seed: int, per_family: int, only: list[str] | None = None, version: int = GENERATOR_VERSION
) -> list[tuple[str, Instance]]:
    """``per_family`` distinct instances of every training family of generator ``version``, in a fixed order;
    ``only``: of these families (the same instances as in the whole set: they are chosen over all families, then
    filtered)."""
    if version not in VERSIONS:
        raise ValueError(f"generator version {version}: this code makes versions {VERSIONS[0]} to {VERSIONS[-1]}")
    world = World(TRAIN_WORLD_BASE + seed)
    chosen = []
    openings: set[str] = set()  # a lesson is found by its first user turn: unique across families
    for name, family in families.items():
        if not family.trains_in(version):
            continue
        rng = random.Random(f"alltools-train-{seed}-{name}")
        wording = random.Random(f"alltools-wording-{seed}-{name}")
        taken = 0
        for _ in range(per_family * 20):
            if taken == per_family:
                break
            instance = family.make(rng, world)
            if version >= REWORDED_SINCE and family.category != "chat":
                instance.turns[0] = reworded(wording, instance.turns[0])
            # The teacher finds a lesson by its opening in the prompt: no opening may hold another one.
            if any(instance.turns[0] in known or known in instance.turns[0] for known in openings):
                continue
            openings.add(instance.turns[0])
            taken += 1
            chosen.append((name, instance))
    return [(name, instance) for name, instance in chosen if not only or name in only]


def reworded(rng: random.Random, request: str) -> str:
    """``request`` as it is, or with a greeting before it or a courtesy after it (a third each)."""
    how = rng.randrange(3)
    if how == 1:
        return rng.choice(OPENERS) + request
    if how == 2:
        return request + rng.choice(CLOSERS)
    return request


class RecordingChat:
    """The agent's chat service, with each round's request kept on its lesson."""

    def __init__(self, chat: Any):
        self._chat = chat

    async def plan(self, request: Any, adapter: Any = None) -> Any:
        body = request.model_dump(mode="json", exclude_none=True)
        users = [m for m in body["messages"] if m.get("role") == "user"]
        lesson = classroom.lessons.get(users[0]["content"]) if users else None
        record = {"messages": body["messages"], "tools": body.get("tools") or []}
        # The agent plans its first round twice (once to refuse a bad request before the stream starts): one round.
        if lesson is not None and (not lesson.rounds or lesson.rounds[-1] != record):
            lesson.rounds.append(record)
        return await self._chat.plan(request, adapter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat, name)


def lines_of(lesson: Lesson, renderer: Renderer) -> list[dict[str, Any]]:
    """One training line per round whose reply ended a request (an answer, not a call), checked to render to the
    prompts the teacher saw. A call made under other tool definitions than the line's (the drawing tool's
    description names the last picture, so it changes once one is drawn) is trained in a line of its own round."""
    if len(lesson.rounds) != len(lesson.replies):
        raise ValueError(f"{len(lesson.rounds)} rounds recorded for {len(lesson.replies)} replies")
    lines = []
    calls = renderer.parser([])
    for request, reply in zip(lesson.rounds, lesson.replies, strict=True):
        if calls.parse(reply, final=True).calls:
            continue
        messages = _earlier_turns_untrained([*request["messages"], {"role": "assistant", "content": reply}])
        line = {"messages": messages, "tools": request["tools"]}
        for i in _unseen(line, lesson, renderer):
            messages[i]["weight"] = 0
            own = next(r for r in lesson.rounds if r["messages"] == _unweighted(messages[:i]))
            own_line = _earlier_turns_untrained([*own["messages"], {**messages[i], "weight": 1}])
            lines.append(_line(own_line, own["tools"], lesson, renderer))
        lines.append(_line(messages, request["tools"], lesson, renderer))
    return lines


def _earlier_turns_untrained(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy in which the replies of earlier turns (as the client sent them back) have weight 0: context, not
    lessons — they were written under other tool definitions and without their calls."""
    out = copy.deepcopy(messages)
    last_user = max(i for i, m in enumerate(out) if m["role"] == "user")
    for message in out[:last_user]:
        if message["role"] == "assistant":
            message["weight"] = 0
    return out


def _unweighted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def _line(messages: list[dict[str, Any]], tools: list[Any], lesson: Lesson, renderer: Renderer) -> dict[str, Any]:
    line = {"messages": _renumbered(messages), "tools": tools}
    if _unseen(line, lesson, renderer):
        raise ValueError(f"a line for {lesson.key!r} renders to a prompt or reply the teacher never saw")
    return line


def _renumbered(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call ids made by the server are random: ``call_1``, ``call_2``… in order (they are not rendered)."""
    ids: dict[str, str] = {}
    out = []
    for message in copy.deepcopy(messages):
        message = {k: v for k, v in message.items() if v is not None}
        for call in message.get("tool_calls") or []:
            call["id"] = ids.setdefault(call["id"], f"call_{len(ids) + 1}")
        if "tool_call_id" in message:
            message["tool_call_id"] = ids.get(message["tool_call_id"], message["tool_call_id"])
        out.append(message)
    return out


def _unseen(line: dict[str, Any], lesson: Lesson, renderer: Renderer) -> list[int]:
    """The trained assistant messages of ``line`` that do not render, with the fine-tuning renderer, to a reply the
    teacher wrote after a prompt it was given."""
    tools = [t for t in line["tools"] if t.get("type", "function") == "function"]
    messages = normalize_raw_messages([{k: v for k, v in m.items() if k != "weight"} for m in line["messages"]], "")
    adapted = adapt_for_template(messages, renderer.template, renderer.parser(tools), tools)
    offset = len(adapted) - len(messages)  # the system message the tool listing added
    replies = {r.strip() for r in lesson.replies}
    unseen = []
    for i, message in enumerate(line["messages"]):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        history = adapted[: i + offset]
        prompt = renderer.template.render(history, tools or None)
        reply = served_text(renderer.template.render_reply(adapted[i + offset], history, tools), renderer.template)
        if prompt not in lesson.prompts or reply.strip() not in replies:
            unseen.append(i)
    return unseen


def teacher_settings(env: EvalEnvironment, student: str, work: Path) -> Settings:
    """A platform with the teacher agent in ``student``'s chat format, browsing ``env``'s website."""
    from ..server import free_port

    spec = Catalog.from_file(Settings().models_file).lookup(student)
    catalog = work / "models.toml"
    catalog.write_text(
        f'[[models]]\nid = "teacher"\nengine = "teacher"\nsource = {json.dumps(spec.source)}\n'
        f'template = "{spec.template}"\ntool_parser = "{spec.tool_parser}"\ncontext_length = {spec.context_length}\n'
        f'\n[[agents]]\nid = "{TEACHER_AGENT}"\nmodel = "teacher"\n' + env.catalog_additions()
    )
    browser = env.server_env()
    return Settings(
        host="127.0.0.1",
        port=free_port(),
        models_file=catalog,
        data_dir=work / "data",
        secret_key_file=work / "secret.key",
        auth="off",
        browser_search=browser["OPENGLM_BROWSER_SEARCH"],
        browser_sites=browser["OPENGLM_BROWSER_SITES"],
        browser_allow=browser["OPENGLM_BROWSER_ALLOW"],
    )


# Serves the platform in this process for the block: (its URL, its app.state). The CLI passes
# ``api.inprocess.serve_in_process``; this package, below the API, does not import it.
Serve = Callable[[Settings], AbstractAsyncContextManager[tuple[str, Any]]]


async def generate(
    out: Path,
    *,
    serve: Serve,
    seed: int,
    per_family: int,
    student: str,
    only: list[str] | None = None,
    concurrency: int = 4,
    command: str = "",
    version: int = GENERATOR_VERSION,
) -> Manifest:
    """Run every training instance through the platform ``serve`` starts; the lines to ``out``, its manifest."""
    from ...serving.toolcalls.base import get_parser

    instances = training_instances(seed, per_family, only, version)
    manifest = Manifest(str(version), seed, per_family, student, command)
    spec = Catalog.from_file(Settings().models_file).lookup(student)
    renderer = Renderer.for_gguf(resolve_source(spec.source), spec.template, spec.tool_parser)
    classroom.parser = get_parser(spec.tool_parser if spec.tool_parser != "auto" else "hermes")([])
    env = EvalEnvironment.start(pages=World(TRAIN_WORLD_BASE + seed).pages(), site_port=TRAIN_SITE_PORT)
    results: list[list[dict[str, Any]] | None] = [None] * len(instances)
    gate = asyncio.Semaphore(concurrency)
    with tempfile.TemporaryDirectory(prefix="openglm-data-") as work:
        try:
            async with serve(teacher_settings(env, student, Path(work))) as (url, state):
                state.agents.loop.chat = RecordingChat(state.agents.loop.chat)
                client = EvalClient(url)

                async def one(n: int, family: str, instance: Instance) -> None:
                    async with gate:
                        lesson = classroom.open(instance)
                        try:
                            await drive(client, TEACHER_AGENT, instance.turns, instance.functions)
                            if lesson.error:
                                raise ValueError(lesson.error)
                            if any(TOOL_FAILED in prompt for prompt in lesson.prompts):
                                # A tool that failed here (a kernel that did not start) is no lesson, and would
                                # make the file differ from run to run.
                                raise ValueError("a tool failed during the lesson")
                            results[n] = lines_of(lesson, renderer)
                        except Exception as exc:
                            manifest.dropped.setdefault(family, []).append(f"{instance.turns[0][:60]}: {exc}")
                        finally:
                            classroom.close(lesson)

                try:
                    await asyncio.gather(*(one(n, f, i) for n, (f, i) in enumerate(instances)))
                finally:
                    await client.close()
        finally:
            env.stop()
            renderer.tokenizer.close()  # type: ignore[attr-defined]
    by_family: dict[str, list[str]] = {}
    for (family, _), lines in zip(instances, results, strict=True):
        repeats = REPEATS_SINCE_8 if version >= REPEATED_FUNCTIONS_SINCE else REPEATS
        for line in (lines or []) * repeats.get(families[family].category, 1):
            # Key order kept: it is the tool listing's order.
            by_family.setdefault(family, []).append(json.dumps(line, ensure_ascii=False) + "\n")
    manifest.families = {name: len(written) for name, written in by_family.items()}
    manifest.family_sha256 = {name: _sha256("".join(w)) for name, w in by_family.items()}
    text = "".join(line for written in by_family.values() for line in written)
    out.write_text(text)
    manifest.lines = text.count("\n")
    manifest.sha256 = _sha256(text)
    return manifest


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
