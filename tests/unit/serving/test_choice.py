from __future__ import annotations

from openglm.serving.choice import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = ""
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out += text
        if stopped:
            return out, True
    return out + matcher.flush(), False


def test_stop_string_split_across_pieces() -> None:
    assert feed_all(StopMatcher(["END"]), ["Hello E", "N", "D and more"]) == ("Hello ", True)


def test_partial_stop_that_never_completes_is_released() -> None:
    assert feed_all(StopMatcher(["END"]), ["Hello E", "N"]) == ("Hello EN", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopMatcher(["b", "a"]), ["xxab"]) == ("xx", True)


def test_no_stops_passes_through() -> None:
    assert feed_all(StopMatcher([]), ["a", "b"]) == ("ab", False)
