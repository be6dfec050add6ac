"""The assistant API's pieces below HTTP: attachments read for the model, history replayed, and agent events
written as assistant chunks (checked by the unmodified zhipuai SDK's own parser)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from zhipuai.core._base_models import construct_type
from zhipuai.types.assistant import AssistantCompletion

from openglm.agent.assistant_stream import AssistantWriter
from openglm.agent.loop import AgentEvent, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput, ToolOutputs
from openglm.errors import InvalidFieldError
from openglm.files.blobs import LocalBlobStore
from openglm.files.store import FileStore
from openglm.glms.assistant import (
    attachment_text,
    attachments_of,
    estimated_tokens,
    history_budget,
    replayed,
    transcript,
)
from openglm.glms.conversations import StoredMessage
from openglm.protocol.chat import ChatMessage
from openglm.serving.usage import Tally
from openglm.store.db import Database
from openglm.store.models import Account

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
async def files(database: Database, tmp_path: Path) -> FileStore:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    return FileStore(database, LocalBlobStore(tmp_path / "blobs"))


async def test_attachments_are_the_callers_files_read_as_text(files: FileStore) -> None:
    notes = await files.create("acct_a", "assistant", "notes.md", b"# Plan\n\nShip on Tuesday.\n" + b"x" * 9000)
    blob = await files.create("acct_a", "assistant", "data.bin", bytes(range(256)) * 4)
    other = await files.create("acct_b", "assistant", "theirs.txt", b"secret")
    with pytest.raises(InvalidFieldError):
        await attachments_of(files, "acct_a", [notes.id, other.id])
    attached = await attachments_of(files, "acct_a", [notes.id, blob.id, notes.id])
    assert attached == [{"file_id": notes.id, "filename": "notes.md"}, {"file_id": blob.id, "filename": "data.bin"}]
    text = await attachment_text(files, "acct_a", attached)
    assert "[Attached file notes.md (cut)]\n# Plan\n\nShip on Tuesday." in text
    assert "[Attached file data.bin: 1024 bytes, not readable as text]" in text
    assert len(text) < 8_000 + 300
    await files.delete("acct_a", notes.id)
    assert "[Attached file notes.md: no longer available]" in await attachment_text(files, "acct_a", attached[:1])


async def test_history_is_replayed_with_tool_calls_folded_into_the_answer(files: FileStore) -> None:
    calls = [{"type": "code_interpreter", "input": "print(6*7)", "outputs": [{"type": "logs", "logs": "42\n"}]}]
    history = [
        StoredMessage("user", "What is 6*7?", None, None, NOW),
        StoredMessage("assistant", "It is 42.", calls, None, NOW),
    ]
    messages = await replayed(files, "acct_a", history)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What is 6*7?"),
        (
            "assistant",
            '[code_interpreter called with: print(6*7)]\n[code_interpreter returned: [{"type": "logs", '
            '"logs": "42\\n"}]]\nIt is 42.',
        ),
    ]
    long = [{"type": "function", "name": "lookup", "input": "{}", "outputs": [{"content": "y" * 5000}]}]
    folded = transcript(StoredMessage("assistant", "", long, None, NOW))
    assert folded.startswith("[lookup called with: {}]") and len(folded) < 1_100


async def test_events_become_chunks_the_sdk_reads() -> None:
    async def events() -> AsyncIterator[AgentEvent]:
        yield Text("Let me compute. ")
        yield ToolInput("call_1", "code_interpreter", "print(")
        yield ToolInput("call_1", "code_interpreter", "6*7)")
        yield FunctionCall(1, "call_2", "lookup", "")
        yield FunctionCall(1, None, None, '{"q": 1}')
        yield ToolCallsEnd()
        yield ToolOutputs("code_interpreter", [{"type": "logs", "logs": "42\n"}])
        yield ToolOutputs("function", [{"status": 200, "content": "ok"}])
        yield Text("42.")
        yield Finished("stop", "completed")

    writer = AssistantWriter("glm-4-alltools", "c1")
    tally = Tally(prompt_tokens=11, completion_tokens=7)
    wire = [chunk.model_dump(mode="json", exclude_none=True) async for chunk in writer.chunks(events(), tally)]
    parsed = [construct_type(type_=AssistantCompletion, value=c) for c in wire]
    deltas = [p.choices[0].delta for p in parsed]
    assert [d.role for d in deltas] == ["assistant", "tool", "tool", "tool", "tool", "assistant", "assistant"]
    assert deltas[1].tool_calls[0].code_interpreter.input == "print(6*7)"  # whole, once
    assert (deltas[2].tool_calls[0].function.name, deltas[2].tool_calls[0].function.arguments) == ("lookup", '{"q": 1}')
    assert deltas[3].tool_calls[0].code_interpreter.outputs[0].logs == "42\n"
    assert deltas[4].tool_calls[0].function.outputs[0].content == "ok"
    assert [d.content for d in (deltas[0], deltas[5])] == ["Let me compute. ", "42."]
    assert {p.conversation_id for p in parsed} == {"c1"} and len({p.id for p in parsed}) == 1
    assert [p.status for p in parsed] == ["in_progress"] * 6 + ["completed"]
    assert parsed[-1].choices[0].finish_reason == "stop" and parsed[-1].usage.total_tokens == 18
    assert all("metadata" not in c["choices"][0] for c in wire)  # the SDK cannot build a choice's metadata


async def test_a_long_text_attachment_is_cut_not_called_unreadable(files: FileStore) -> None:
    body = "".join(f"Line {n}: the plan holds.\n" for n in range(2_000)).encode()  # about 50,000 characters
    assert len(body) > 32_000
    long = await files.create("acct_a", "assistant", "long.txt", body)
    text = await attachment_text(files, "acct_a", [{"file_id": long.id, "filename": "long.txt"}])
    assert text.startswith("[Attached file long.txt (cut)]\nLine 0: the plan holds.\n")
    assert "not readable" not in text and text.endswith("[End of long.txt]")
    assert len(text) < 8_000 + 100


async def test_a_long_history_is_replayed_newest_first_within_its_budget(files: FileStore) -> None:
    report = await files.create("acct_a", "assistant", "report.txt", b"Quarterly numbers are up.")
    attached = [{"file_id": report.id, "filename": "report.txt"}]
    history = [
        StoredMessage("user", "Read this.", None, attached, NOW),
        StoredMessage("assistant", "Done.", None, None, NOW),
    ]
    for n in range(40):
        history += [
            StoredMessage("user", f"Question {n}: " + "word " * 50, None, None, NOW),
            StoredMessage("assistant", f"Answer {n}: " + "word " * 50, None, None, NOW),
        ]
    everything = await replayed(files, "acct_a", history)
    assert len(everything) == 82  # no budget: all of it

    turn = sum(estimated_tokens(str(m.content)) for m in everything[-2:])
    kept = await replayed(files, "acct_a", history, budget=turn * 5 + turn // 2)
    assert [m.role for m in kept] == ["user", "assistant"] * 5  # whole turns, the newest five
    assert str(kept[0].content).startswith("Question 35:") and str(kept[-1].content).startswith("Answer 39:")
    assert await replayed(files, "acct_a", history, budget=0) == []

    # Attachments are read again for the latest turns only; an older one is named, not read.
    short = await replayed(files, "acct_a", history[:6])
    assert short[0].content == "[Attached earlier: report.txt]\n\nRead this."
    recent = await replayed(files, "acct_a", history[:4])
    assert "Quarterly numbers are up." in str(recent[0].content)


def test_the_history_budget_leaves_room_for_the_answer_and_the_new_message() -> None:
    new = ChatMessage(role="user", content="word " * 400)
    assert history_budget(8192, 1024, new) == 8192 - 1024 - estimated_tokens("word " * 400) - 8192 // 8
    assert history_budget(4096, 4000, new) == 0  # never negative: the history is left out entirely


async def test_an_attachment_is_parsed_once_however_many_turns_replay_it(
    files: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn reads its own attachments and replays the last two turns' ones: ten turns that each attach the same
    document parsed it 27 times in the shared worker pool before (1 + 2 + 3 × 8); now once."""
    from openglm.glms import assistant
    from openglm.knowledge.parsing import parse_isolated

    parses: list[str] = []

    async def counted(data: bytes, name: str, media_type: str | None = None, *, max_chars: int) -> object:
        parses.append(name)
        return await parse_isolated(data, name, media_type, max_chars=max_chars)  # the real parse, in a worker

    monkeypatch.setattr(assistant, "parse_isolated", counted)
    spec = await files.create("acct_a", "assistant", "spec.md", b"# Spec\n\nThe widget is blue.\n")
    attached = [{"file_id": spec.id, "filename": "spec.md"}]
    history: list[StoredMessage] = []
    for turn in range(10):
        new = await assistant.user_message(files, "acct_a", f"Question {turn}", attached)
        messages = [*await replayed(files, "acct_a", history), new]
        assert all("The widget is blue." in str(m.content) for m in messages[-5::2])  # read, from the cache
        history += [
            StoredMessage("user", f"Question {turn}", None, attached, NOW),
            StoredMessage("assistant", f"Answer {turn}", None, None, NOW),
        ]
    assert parses == ["spec.md"]
    other = await files.create("acct_b", "assistant", "spec.md", b"# Spec\n\nThe widget is red.\n")
    text = await attachment_text(files, "acct_b", [{"file_id": other.id, "filename": "spec.md"}])
    assert "red" in text and parses == ["spec.md", "spec.md"]  # another file is read for itself
    await files.delete("acct_a", spec.id)
    assert "no longer available" in await attachment_text(files, "acct_a", attached)  # not served from the cache
