"""The native GLM-4 chat format (glm-4-9b-chat), written out in Python.

Byte-identical to the model's own ``chat_template`` rendered without jinja's
``trim_blocks`` (the layout the official ``tokenization_chatglm.py`` built:
a blank line before every ``## tool`` heading). Tools go in a fixed
``<|system|>`` block ahead of the caller's own system message; each message is
``<|role|>{metadata}\n{content}``; a tool call is an assistant turn whose
metadata is the function name and whose body is the JSON arguments; a tool
result is an ``<|observation|>`` turn. Generation stops on ``<|endoftext|>``,
``<|user|>`` or ``<|observation|>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import ChatTemplate, Message, templates

SYSTEM_PREAMBLE = "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，你的任务是针对用户的问题和要求提供适当的答复和支持。"
TOOLS_HEADING = "\n\n# 可用工具"
FUNCTION_NOTE = "在调用上述函数时，请使用 Json 格式表示调用的参数。"
BUILTIN_TOOL_TEXT = {
    "python": "当你向 `python` 发送包含 Python 代码的消息时，该代码将会在一个有状态的 Jupyter notebook 环境中执行。\n`python` 返回代码执行的输出，或在执行 60 秒后返回超时。\n`/mnt/data` 将会持久化存储你的文件。在此会话中，`python` 无法访问互联网。不要使用 `python` 进行任何网络请求或者在线 API 调用，这些在线内容的访问将不会成功。",
    "simple_browser": "你可以使用 `simple_browser` 工具。该工具支持以下函数：\n`search(query: str, recency_days: int)`：使用搜索引擎进行查询并显示结果，可以使用 `recency_days` 参数控制搜索内容的时效性。\n`mclick(ids: list[int])`：获取一系列指定 id 的页面内容。每次调用时，须选择3-10个页面。选择多个角度的页面，同时尽可能选择可信任的信息来源。考虑到部分页面是无法加载的，你也可以多打开一些可能有用的页面而不用担心内容过多。\n`open_url(url: str)`：打开指定的 URL。\n\n使用 `【{引用 id}†{引用文本}】` 来引用内容。\n\n操作步骤：1. 使用 `search` 来获得信息列表; 2. 使用 `mclick` 来获取指定 ID 页面的内容; 3. 根据获得的内容进行回复。在回复中应当引用信息来源。\n 如果用户提供了 URL，也可以用 `open_url` 直接打开页面。\n如果初次搜索结果没有找到合适的信息，也可以再次使用 `search` 进行搜索。",
    "cogview": "如果用户的请求中包含了对图像的描述，你可以使用 `cogview` 来生成图像并展示给用户。你需要向 `cogview` 发送图像描述，规则：\n- 发送给 `cogview` 的消息必须使用英语。用户的中文描述必须完全翻译为英语。\n- 应当尽可能详细地描述图像生成的需求，需求描述约 100 英文单词。\n- 保持用户原始描述的意图。不要虚构内容或者没见过的人物。\n- 如无特殊说明，所在地为中国，持有中国立场并遵循中国社会主义价值观。",
}
ROLE_TAGS = {"system": "system", "user": "user", "assistant": "assistant", "tool": "observation"}


def tools_block(tools: list[dict[str, Any]]) -> str:
    parts = ["<|system|>\n", SYSTEM_PREAMBLE, TOOLS_HEADING]
    for tool in tools:
        kind = tool.get("type", "function")
        if kind == "function":
            function = tool["function"]
            body = json.dumps(function, ensure_ascii=False, indent=4)
            parts.append(f"\n\n## {function['name']}\n\n{body}\n{FUNCTION_NOTE}")
        elif kind in BUILTIN_TOOL_TEXT:
            parts.append(f"\n\n## {kind}\n\n{BUILTIN_TOOL_TEXT[kind]}")
    return "".join(parts)


def turn(role: str, content: str, metadata: str = "") -> str:
    return f"<|{role}|>{metadata}\n{content}"


class GLM4Template(ChatTemplate):
    name = "glm4"
    stop_markers = ("<|endoftext|>", "<|user|>", "<|observation|>")
    renders_tools = True
    builtin_tools = frozenset(BUILTIN_TOOL_TEXT)

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> str:
        parts = ["[gMASK]<sop>"]
        if tools:
            parts.append(tools_block(tools))
        for message in messages:
            role = ROLE_TAGS[message["role"]]
            content = message.get("content") or ""
            if content:  # the official template skips empty turns
                parts.append(turn(role, content))
            for call in message.get("tool_calls") or ():
                parts.append(turn("assistant", call["arguments"], call["name"]))
        parts.append("<|assistant|>")
        return "".join(parts)

    def render_reply(self, message: Message, history: list[Message], tools: list[dict[str, Any]] | None) -> str:
        # The prompt ends in "<|assistant|>": a reply opens with its metadata line (empty for prose, the function's
        # name for a call); further calls are further assistant turns. A turn with calls hands over to the tool
        # (<|observation|>), any other ends the conversation's turn (<|user|>), as ``render`` lays the history out.
        content = message.get("content") or ""
        turns = [f"\n{content}"] if content else []
        turns += [f"{call['name']}\n{call['arguments']}" for call in message.get("tool_calls") or ()]
        end = "<|observation|>" if message.get("tool_calls") else "<|user|>"
        return "<|assistant|>".join(turns or ["\n"]) + end


@templates.register("glm4")
def _glm4(hints: Mapping[str, str]) -> ChatTemplate:
    return GLM4Template()
