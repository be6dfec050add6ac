"""A batch's input file checked line by line: endpoint spellings, line numbers that count blank lines, one model,
and the error list bounded."""

from __future__ import annotations

import json

from openglm.batches.input import CHAT, EMBEDDINGS, ERRORS_LISTED, canonical_endpoint, parse_input


def chat_line(custom_id: str, url: str = "/v1/chat/completions", model: str = "m") -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def test_every_spelling_of_an_endpoint_is_one() -> None:
    for spelling in ("/v1/chat/completions", "/v4/chat/completions", "/api/paas/v4/chat/completions/"):
        assert canonical_endpoint(spelling) == CHAT
    assert canonical_endpoint("/v4/embeddings") == EMBEDDINGS
    assert canonical_endpoint("/v1/images/generations") is None


def test_lines_keep_their_file_numbers_and_zhipu_urls_are_accepted() -> None:
    data = "\n".join([chat_line("a"), "", chat_line("b", "/v4/chat/completions")]).encode()
    parsed = parse_input(data, CHAT)
    assert not parsed.errors and parsed.model == "m"
    assert [(line.number, line.custom_id) for line in parsed.lines] == [(1, "a"), (3, "b")]


def test_errors_are_bounded_and_counted() -> None:
    lines = [chat_line(f"x{i}", model=f"m{i}") for i in range(ERRORS_LISTED + 10)]
    parsed = parse_input("\n".join(lines).encode(), CHAT)
    assert len(parsed.errors) == ERRORS_LISTED and parsed.more_errors == 9  # the first line sets the model
    assert parsed.errors[0].line == 2 and parsed.errors[0].code == "mismatched_model"


def test_an_empty_or_undecodable_file_is_refused() -> None:
    assert parse_input(b"\n\n", CHAT).errors[0].code == "empty_file"
    assert parse_input(b"\xff\xfe", CHAT).errors[0].code == "invalid_file"
