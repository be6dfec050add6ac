"""Training files, checked line by line when a fine-tuning job is created: every problem is reported with its line
number ("line 7: messages[2]: ..."), at most ``MAX_ERRORS`` of them, so a user fixes a file in one round.

A file is untrusted input of up to 100 MiB: ``check_training_file`` runs in the untrusted worker pool
(``FineTuningService`` calls it through ``shared_pool().run``), like ``files/store.py: check_jsonl``. It returns
plain data (a dict) and raises ``InvalidFieldError`` (400, 1214) listing the problems.

Line shapes (OpenAI's and Zhipu's fine-tuning formats):
- supervised: ``{"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool}`` — roles system, user,
  assistant, tool; at least one assistant message (what is trained); an assistant message has ``content`` or
  ``tool_calls`` (each ``{id, type: "function", function: {name, arguments}}``, ``arguments`` a JSON text, ``name``
  one of the line's ``tools`` when it lists any); a ``tool`` message answers an id an earlier call made.
- dpo: ``{"input": {"messages": [...], "tools"?, "parallel_tool_calls"?}, "preferred_output": [...],
  "non_preferred_output": [...]}`` — the outputs are non-empty lists of assistant messages.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

from ..errors import InvalidFieldError
from ..untrusted.loaders import load_json

MAX_ERRORS = 20
ROLES = ("system", "user", "assistant", "tool")
METHODS = ("supervised", "dpo")
# Tokens per line for the estimate of a job's cost, without a tokenizer: about one token per 3 UTF-8 bytes of text
# (English runs ~4 bytes a token, Chinese ~4.5), and a few tokens of template per message. An estimate for the
# balance check only; a job is billed for the tokens its trainer reports.
BYTES_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4


class LineProblem(ValueError):
    """One problem of one line; ``where`` says where in the line."""


def check_training_file(data: bytes, method: str, what: str = "training_file") -> dict[str, int]:
    """``{"lines": n, "estimated_tokens": t}`` of a valid file (tokens for one epoch); InvalidFieldError listing
    at most ``MAX_ERRORS`` line-numbered problems otherwise."""
    if method not in METHODS:
        raise InvalidFieldError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    errors: list[str] = []
    bad_lines = 0
    lines = 0
    tokens = 0
    for number, raw in enumerate(io.BytesIO(data), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines += 1
            _note(errors, f"line {number}: not UTF-8 text")
            continue
        if not text.strip():
            continue
        lines += 1
        try:
            value = load_json(text, what=f"line {number}")
        except ValueError:
            bad_lines += 1
            _note(errors, f"line {number}: not a JSON object")
            continue
        try:
            tokens += check_line(value, method)
        except LineProblem as problem:
            bad_lines += 1
            _note(errors, f"line {number}: {problem}")
    if not errors and lines == 0:
        errors.append("the file has no training examples")
    if errors:
        more = bad_lines - len(errors)
        tail = f" (and {more} more lines with problems)" if more > 0 else ""
        raise InvalidFieldError(f"{what} is not a valid {method} training file: " + "; ".join(errors) + tail)
    return {"lines": lines, "estimated_tokens": tokens}


def _note(errors: list[str], message: str) -> None:
    if len(errors) < MAX_ERRORS:
        errors.append(message)


def check_line(value: Any, method: str) -> int:
    """The line's estimated tokens; LineProblem naming its first problem."""
    if not isinstance(value, dict):
        raise LineProblem("not a JSON object")
    if method == "dpo":
        return _check_preference(value)
    if "messages" not in value:
        hint = " (this is a DPO line; create the job with method dpo)" if "preferred_output" in value else ""
        raise LineProblem(f"a supervised line needs 'messages'{hint}")
    names = _tools(value.get("tools"), "tools")
    _flag(value, "parallel_tool_calls")
    messages = _messages(value["messages"], "messages", names)
    if not any(message["role"] == "assistant" for message in messages):
        raise LineProblem("messages: no assistant message (nothing to train on)")
    _answered(messages, "messages")
    return _tokens(messages) + _tool_tokens(value.get("tools"))


def _check_preference(value: dict[str, Any]) -> int:
    for field in ("input", "preferred_output", "non_preferred_output"):
        if field not in value:
            hint = " (this is a supervised line; create the job with method supervised)" if "messages" in value else ""
            raise LineProblem(f"a DPO line needs 'input', 'preferred_output' and 'non_preferred_output'{hint}")
    given = value["input"]
    if not isinstance(given, dict):
        raise LineProblem("input must be an object with 'messages'")
    names = _tools(given.get("tools"), "input.tools")
    _flag(given, "parallel_tool_calls", "input.")
    if "messages" not in given:
        raise LineProblem("input needs 'messages'")
    prompt = _messages(given["messages"], "input.messages", names)
    if not prompt:
        raise LineProblem("input.messages is empty")
    tokens = _tokens(prompt) + _tool_tokens(given.get("tools"))
    for field in ("preferred_output", "non_preferred_output"):
        output = _messages(value[field], field, names)
        if not output:
            raise LineProblem(f"{field} is empty")
        for index, message in enumerate(output):
            if message["role"] != "assistant":
                raise LineProblem(f"{field}[{index}]: role must be assistant, not {message['role']!r}")
        _answered(prompt + output, field)
        tokens += _tokens(output)
    return tokens


def _flag(value: dict[str, Any], field: str, prefix: str = "") -> None:
    if field in value and not isinstance(value[field], bool):
        raise LineProblem(f"{prefix}{field} must be true or false")


def _tools(tools: Any, where: str) -> set[str] | None:
    """The function names a line's ``tools`` declares; None when it declares none."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise LineProblem(f"{where} must be a list of function tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        at = f"{where}[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise LineProblem(f"{at}: a tool is {{'type': 'function', 'function': {{...}}}}")
        function = tool.get("function")
        if not isinstance(function, dict) or not _name(function.get("name")):
            raise LineProblem(f"{at}.function needs a 'name' (letters, digits, _ and -, at most 64)")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise LineProblem(f"{at}.function.parameters must be a JSON schema object")
        if "description" in function and not isinstance(function["description"], str):
            raise LineProblem(f"{at}.function.description must be text")
        if function["name"] in names:
            raise LineProblem(f"{at}: the function {function['name']!r} is declared twice")
        names.add(function["name"])
    return names


def _name(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and all(character.isalnum() or character in "_-." for character in value)
    )


def _messages(messages: Any, where: str, tools: set[str] | None) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise LineProblem(f"{where} must be a list of messages")
    for index, message in enumerate(messages):
        _message(message, f"{where}[{index}]", tools)
    return messages


def _message(message: Any, at: str, tools: set[str] | None) -> None:
    if not isinstance(message, dict):
        raise LineProblem(f"{at}: a message is an object with 'role' and 'content'")
    role = message.get("role")
    if role not in ROLES:
        raise LineProblem(f"{at}: role must be one of {', '.join(ROLES)}, not {role!r}")
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise LineProblem(f"{at}: only assistant messages make tool_calls")
        _calls(calls, f"{at}.tool_calls", tools)
    content = message.get("content")
    if content is None:
        if not (role == "assistant" and calls):
            raise LineProblem(f"{at}: content is missing (only an assistant message with tool_calls may omit it)")
    else:
        _content(content, f"{at}.content")
    if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
        raise LineProblem(f"{at}: a tool message needs the 'tool_call_id' of the call it answers")
    if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
        raise LineProblem(f"{at}: weight is 0 or 1, on assistant messages")
    if "reasoning_content" in message and not isinstance(message["reasoning_content"], str):
        raise LineProblem(f"{at}: reasoning_content must be text")


def _content(content: Any, at: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise LineProblem(f"{at} must be text or a list of text parts")
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise LineProblem(f"{at}[{index}]: a content part is {{'type': 'text', 'text': '...'}}")


def _calls(calls: Any, at: str, tools: set[str] | None) -> None:
    if not isinstance(calls, list) or not calls:
        raise LineProblem(f"{at} must be a non-empty list")
    for index, call in enumerate(calls):
        where = f"{at}[{index}]"
        if not isinstance(call, dict) or not (isinstance(call.get("id"), str) and call["id"]):
            raise LineProblem(f"{where}: a tool call needs an 'id'")
        if call.get("type", "function") != "function":
            raise LineProblem(f"{where}: type must be 'function'")
        function = call.get("function")
        if not isinstance(function, dict) or not _name(function.get("name")):
            raise LineProblem(f"{where}.function needs a 'name'")
        if tools is not None and function["name"] not in tools:
            raise LineProblem(f"{where}: calls {function['name']!r}, which the line's tools do not declare")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            raise LineProblem(f"{where}.function.arguments must be a JSON text (a string)")
        try:
            parsed = load_json(arguments, what=f"{where}.function.arguments")
        except ValueError:
            raise LineProblem(f"{where}.function.arguments is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise LineProblem(f"{where}.function.arguments must be a JSON object")


def _answered(messages: list[dict[str, Any]], where: str) -> None:
    """Every tool message answers a call an earlier assistant message made."""
    made: set[str] = set()
    for index, message in enumerate(messages):
        for call in message.get("tool_calls") or ():
            made.add(call["id"])
        if message["role"] == "tool" and message["tool_call_id"] not in made:
            raise LineProblem(
                f"{where}[{index}]: tool_call_id {message['tool_call_id']!r} answers no earlier assistant tool call"
            )


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="surrogatepass"))
    if isinstance(value, list):
        return sum(_text_bytes(part.get("text", "")) if isinstance(part, dict) else 0 for part in value)
    return 0


def _tokens(messages: list[dict[str, Any]]) -> int:
    size = 0
    for message in messages:
        size += _text_bytes(message.get("content")) + _text_bytes(message.get("reasoning_content"))
        for call in message.get("tool_calls") or ():
            size += _text_bytes(call["function"]["name"]) + _text_bytes(call["function"]["arguments"])
    return math.ceil(size / BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def _tool_tokens(tools: Any) -> int:
    if not tools:
        return 0
    return math.ceil(len(json.dumps(tools, ensure_ascii=False).encode()) / BYTES_PER_TOKEN)
