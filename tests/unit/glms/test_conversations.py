"""Stored conversations on SQLite and PostgreSQL: turns in order, privacy per account, one assistant per
conversation, concurrent turns, paging newest first, deletes, and the turn collapsed from agent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from openglm.agent.loop import AgentEvent, Finished, FunctionCall, Text, ToolCallsEnd, ToolInput, ToolOutputs
from openglm.errors import InvalidFieldError, NotFoundError
from openglm.glms.conversations import ConversationStore, Turn, title_of
from openglm.glms.recording import TurnRecorder, TurnSaver
from openglm.serving.usage import Tally
from openglm.store.db import Database
from openglm.store.models import Account


@pytest.fixture
async def store(database: Database) -> ConversationStore:
    async with database.session() as session:
        session.add_all([Account(id="acct_a", name="a"), Account(id="acct_b", name="b")])
    return ConversationStore(database)


def turn(user: str, answer: str, prompt: int = 10, completion: int = 5) -> Turn:
    return Turn(user=user, answer=answer, prompt_tokens=prompt, completion_tokens=completion)


async def test_turns_create_then_continue_a_conversation(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 3, turn("  Plan   my\ntrip ", "Sure.", 10, 5))
    calls = [{"type": "code_interpreter", "input": "print(1)", "outputs": [{"type": "logs", "logs": "1\n"}]}]
    await store.record_turn(
        "acct_a", "c1", "glm1", 3, Turn("More", [{"file_id": "f", "filename": "a.txt"}], "Ok", calls, 30, 7)
    )
    record = await store.get("acct_a", "c1")
    assert (record.assistant_id, record.agent_version, record.title) == ("glm1", 3, "Plan my trip")
    assert (record.prompt_tokens, record.completion_tokens) == (40, 12)
    assert record.updated_at >= record.created_at
    messages = await store.messages("acct_a", "c1")
    assert [(m.role, m.content) for m in messages] == [
        ("user", "  Plan   my\ntrip "),
        ("assistant", "Sure."),
        ("user", "More"),
        ("assistant", "Ok"),
    ]
    assert messages[1].tool_calls is None and messages[3].tool_calls == calls
    assert messages[2].attachments == [{"file_id": "f", "filename": "a.txt"}] and messages[0].attachments is None


async def test_conversations_are_private_to_their_account(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 1, turn("Hi", "Hello"))
    with pytest.raises(NotFoundError):
        await store.get("acct_b", "c1")
    with pytest.raises(NotFoundError):
        await store.delete("acct_b", "c1")
    assert await store.messages("acct_b", "c1") == []
    # The same id chosen by another account is another conversation.
    await store.record_turn("acct_b", "c1", "glm-4-alltools", None, turn("Mine", "Yours"))
    assert (await store.get("acct_a", "c1")).title == "Hi" and (await store.get("acct_b", "c1")).title == "Mine"


async def test_a_conversation_stays_with_its_assistant(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 1, turn("Hi", "Hello"))
    with pytest.raises(InvalidFieldError):
        await store.record_turn("acct_a", "c1", "glm2", 1, turn("Hijack", "No"))
    assert len(await store.messages("acct_a", "c1")) == 2  # nothing half-written


async def test_concurrent_turns_all_land_in_order(store: ConversationStore) -> None:
    await asyncio.gather(*(store.record_turn("acct_a", "c1", "glm1", 1, turn(f"q{n}", f"a{n}")) for n in range(5)))
    messages = await store.messages("acct_a", "c1")
    assert len(messages) == 10 and [m.role for m in messages] == ["user", "assistant"] * 5
    assert sorted(m.content for m in messages[::2]) == [f"q{n}" for n in range(5)]
    assert (await store.get("acct_a", "c1")).prompt_tokens == 50


async def test_pages_are_newest_first_and_filtered_by_assistant(store: ConversationStore) -> None:
    for n in range(4):
        await store.record_turn("acct_a", f"c{n}", "glm1" if n != 2 else "glm2", 1, turn(f"t{n}", "x"))
        await asyncio.sleep(0.01)
    await store.record_turn("acct_a", "c0", "glm1", 1, turn("back to the first", "x"))  # now the newest
    page, total = await store.page("acct_a", "glm1", 1, 2)
    assert total == 3 and [c.id for c in page] == ["c0", "c3"]
    rest, _ = await store.page("acct_a", "glm1", 2, 2)
    assert [c.id for c in rest] == ["c1"]
    everything, total_all = await store.page("acct_a", None, 1, 10)
    assert total_all == 4 and {c.id for c in everything} == {"c0", "c1", "c2", "c3"}
    assert await store.page("acct_b", None, 1, 10) == ([], 0)


async def test_delete_takes_the_messages_with_it(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 1, turn("Hi", "Hello"))
    await store.delete("acct_a", "c1")
    with pytest.raises(NotFoundError):
        await store.get("acct_a", "c1")
    assert await store.messages("acct_a", "c1") == []
    await store.record_turn("acct_a", "c1", "glm1", 2, turn("Again", "Fresh"))  # the id can start over
    assert [m.content for m in await store.messages("acct_a", "c1")] == ["Again", "Fresh"]


def test_titles_are_the_first_message_trimmed() -> None:
    assert title_of("  hello \n world ") == "hello world"
    assert title_of("") == "Untitled"
    long = title_of("word " * 40)
    assert len(long) == 60 and long.endswith("…")


def test_the_recorder_collapses_tool_calls_from_the_events() -> None:
    recorded = Turn(user="q")
    recorder = TurnRecorder(recorded)
    events = [
        Text("Let me run it. "),
        ToolInput("call_1", "code_interpreter", "print("),
        ToolInput("call_1", "code_interpreter", "2)"),
        FunctionCall(1, "call_2", "get_weather", ""),
        FunctionCall(1, None, None, '{"city": "Paris"}'),
        ToolCallsEnd(),
        ToolOutputs("code_interpreter", [{"type": "logs", "logs": "2\n"}]),
        ToolOutputs("function", [{"status": 200, "content": "sunny"}]),
        Text("Done."),
        Finished("stop", "completed"),
    ]
    for event in events:
        recorder.feed(event)
    assert recorded.answer == "Let me run it. Done."
    assert recorded.tool_calls == [
        {"type": "code_interpreter", "input": "print(2)", "outputs": [{"type": "logs", "logs": "2\n"}]},
        {
            "type": "function",
            "name": "get_weather",
            "input": '{"city": "Paris"}',
            "outputs": [{"status": 200, "content": "sunny"}],
        },
    ]


async def test_a_stream_left_early_stores_what_was_delivered(store: ConversationStore) -> None:
    tally = Tally()

    async def events() -> AsyncIterator[AgentEvent]:
        for word in ["one ", "two ", "three "]:
            tally.completion_tokens += 1
            yield Text(word)
        yield Finished("stop", "completed")

    saver = TurnSaver(store, "acct_a", "c1", "glm1", 1, "count")
    stream = saver.record(events(), tally)
    assert await anext(stream) == Text("one ")
    assert await anext(stream) == Text("two ")
    await stream.aclose()  # the client went away after two chunks
    await store.drain()
    messages = await store.messages("acct_a", "c1")
    assert [m.content for m in messages] == ["count", "one two "]


async def test_a_stream_that_delivered_nothing_stores_nothing(store: ConversationStore) -> None:
    async def events() -> AsyncIterator[AgentEvent]:
        raise RuntimeError("the engine fell over")
        yield Text("never")

    saver = TurnSaver(store, "acct_a", "c1", "glm1", 1, "hi")
    with pytest.raises(RuntimeError):
        await anext(saver.record(events(), Tally()))
    await store.drain()
    assert await store.find("acct_a", "c1") is None


async def test_a_whole_stream_is_stored_before_its_last_event(store: ConversationStore) -> None:
    async def events() -> AsyncIterator[AgentEvent]:
        yield Text("all of it")
        yield Finished("stop", "completed")

    saver = TurnSaver(store, "acct_a", "c1", "glm1", 1, "hi")
    stream = saver.record(events(), Tally(prompt_tokens=7, completion_tokens=3))
    assert [e async for e in stream][-1] == Finished("stop", "completed")
    record = await store.get("acct_a", "c1")  # no drain needed: stored when the answer was whole
    assert (record.prompt_tokens, record.completion_tokens) == (7, 3)


async def test_a_turn_on_a_conversation_deleted_meanwhile_is_dropped(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 1, turn("Hi", "Hello"))
    saver = TurnSaver(store, "acct_a", "c1", "glm1", 1, "More", continues=True)  # the turn starts …
    await store.delete("acct_a", "c1")  # … the conversation is deleted while it runs …
    await saver.save()  # … and its end does not bring the conversation back
    assert await store.find("acct_a", "c1") is None
    assert await store.messages("acct_a", "c1") == []
    # A first turn still creates its conversation.
    await TurnSaver(store, "acct_a", "c2", "glm1", 1, "New").save()
    assert [m.content for m in await store.messages("acct_a", "c2")] == ["New", ""]


async def test_a_turn_after_function_results_stores_only_the_answer(store: ConversationStore) -> None:
    await store.record_turn("acct_a", "c1", "glm1", 1, turn("Weather?", ""))
    await store.record_turn("acct_a", "c1", "glm1", 1, Turn(user=None, answer="Sunny.", continues=True))
    messages = await store.messages("acct_a", "c1")
    assert [(m.role, m.content) for m in messages] == [("user", "Weather?"), ("assistant", ""), ("assistant", "Sunny.")]


async def test_a_failed_write_at_the_end_does_not_fail_a_delivered_answer(
    store: ConversationStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object) -> None:
        raise OSError("disk full")

    store.record_turn = broken  # type: ignore[method-assign]

    async def events() -> AsyncIterator[AgentEvent]:
        yield Text("all of it")
        yield Finished("stop", "completed")

    saver = TurnSaver(store, "acct_a", "c1", "glm1", 1, "hi")
    delivered = [e async for e in saver.record(events(), Tally())]
    assert delivered == [Text("all of it"), Finished("stop", "completed")]
    await store.drain()
    assert "its turn was not stored" in caplog.text
    assert "a conversation write failed" in caplog.text and "disk full" in caplog.text


async def test_writes_in_the_background_log_their_failures(
    store: ConversationStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing() -> None:
        raise RuntimeError("database gone")

    store.spawn(failing())
    await store.drain()
    assert "a conversation write failed" in caplog.text and "database gone" in caplog.text


def test_a_glm_chat_after_function_results_stores_no_user_message_again() -> None:
    from openglm.glms.chat_request import turn_user_text
    from openglm.protocol.chat import ChatCompletionRequest

    asked = [{"role": "user", "content": "Weather in Paris?"}]
    assert turn_user_text(ChatCompletionRequest(model="m", messages=asked)) == "Weather in Paris?"
    called = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    answered = [*asked, called, {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "call_1"}]
    assert turn_user_text(ChatCompletionRequest(model="m", messages=answered)) is None
    again = [*answered, {"role": "assistant", "content": "Clear."}, {"role": "user", "content": "And Lyon?"}]
    assert turn_user_text(ChatCompletionRequest(model="m", messages=again)) == "And Lyon?"


CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
