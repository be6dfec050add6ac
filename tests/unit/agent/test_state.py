"""Per-conversation tool state: kept while used, dropped when idle, capped in number."""

from __future__ import annotations

from openglm.agent.state import ConversationState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_conversations_are_forgotten_and_busy_ones_kept() -> None:
    clock = Clock()
    state: ConversationState[str] = ConversationState(idle_seconds=60, clock=clock)
    state.set("quiet", "a")
    state.set("busy", "b")
    for _ in range(3):
        clock.now += 30
        assert state.get("busy") == "b"  # each use renews it
    assert state.get("quiet") is None and len(state) == 1


def test_the_number_of_conversations_is_capped() -> None:
    state: ConversationState[int] = ConversationState(max_entries=3, clock=Clock())
    for n in range(5):
        state.set(f"c{n}", n)
    assert [state.get(f"c{n}") for n in range(5)] == [None, None, 2, 3, 4]


def test_setdefault_makes_once() -> None:
    state: ConversationState[list[int]] = ConversationState(clock=Clock())
    first = state.setdefault("c", list)
    first.append(1)
    assert state.setdefault("c", list) == [1]
