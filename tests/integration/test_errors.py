"""Bad input gets a clear 4xx in the platform's format, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from .conftest import MODEL
from .server import RunningServer

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def post(server: RunningServer, body: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=60)
    return httpx.post(server.url + path, json=body, timeout=60)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "1210"),
        (b"[1, 2]", "1210"),
        ({"messages": OK_MESSAGES}, "1213"),
        ({"model": "nope", "messages": OK_MESSAGES}, "1211"),
        ({"model": MODEL, "messages": []}, "1214"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, "1214"),
        ({"model": MODEL, "messages": OK_MESSAGES, "temperature": "hot"}, "1214"),
        ({"model": MODEL, "messages": OK_MESSAGES, "temperature": 7}, "1214"),
        ({"model": MODEL, "messages": OK_MESSAGES, "max_tokens": 0}, "1214"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]}, "1214"),
        ({"model": MODEL, "messages": OK_MESSAGES, "tool_choice": "required"}, "1214"),
        (
            {
                "model": MODEL,
                "messages": OK_MESSAGES,
                "tool_choice": {"type": "function", "function": {"name": "zzz"}},
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "1214",
        ),
        ({"model": MODEL, "messages": OK_MESSAGES, "response_format": {"type": "json_schema"}}, "1214"),
        ({"model": MODEL, "messages": OK_MESSAGES, "logit_bias": {"abc": 1}}, "1214"),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            },
            "1210",  # the default model cannot see: refused as a request it cannot take, never dropped
        ),
    ],
)
def test_bad_requests(server: RunningServer, body: Any, code: str) -> None:
    response = post(server, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_prompt_too_long_is_1261_streaming_or_not(server: RunningServer) -> None:
    messages = [{"role": "user", "content": "hello " * 9000}]
    for stream in (False, True):
        response = post(server, {"model": MODEL, "messages": messages, "stream": stream})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "1261"


def test_null_means_absent_and_unknown_fields_are_ignored(server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "messages": OK_MESSAGES,
        "max_tokens": 4,
        "response_format": None,
        "thinking": None,
        "tools": None,
        "stop": None,
        "request_id": 1716000000.25,
        "user_id": "u1",
        "sensitive_word_check": {"type": "ALL"},
        "some_future_field": {"x": 1},
    }
    response = post(server, body)
    assert response.status_code == 200, response.text
    assert response.json()["request_id"] == "1716000000.25"


def test_unknown_path_and_method(server: RunningServer) -> None:
    response = httpx.get(server.url + "/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "1222"
    response = httpx.get(server.url + "/v1/chat/completions")
    assert response.status_code == 405 and response.json()["error"]["code"] == "1212"


def test_openai_sdk_sees_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="does-not-exist", messages=OK_MESSAGES)
    assert "does not exist" in str(info.value)


def test_empty_completion_prompt_is_a_clear_error(server: RunningServer) -> None:
    for prompt in ("", [""]):
        response = post(server, {"model": MODEL, "prompt": prompt, "max_tokens": 4}, path="/v1/completions")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "1214"
    # The engine is still healthy afterwards.
    assert post(server, {"model": MODEL, "messages": OK_MESSAGES, "max_tokens": 2}).status_code == 200
