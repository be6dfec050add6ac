"""CharGLM role-play: a request's ``meta`` (``bot_name``, ``bot_info``, ``user_name``, ``user_info``) rendered as
CharGLM expects it — a persona block at the head of the conversation saying who the bot is, who the user is and
that the bot stays in character, and the user's turns under the user's name. The bot's own turns stay unnamed, so
the model answers in its voice rather than learning to write its name first. Chinese when the persona is written in
Chinese, else English. Used by every chat model a request sends ``meta`` to (``charglm-3`` is the catalog's name
for it on the default model)."""

from __future__ import annotations

import re

from ..protocol.chat import CharacterMeta
from .templates.base import Message

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def with_character(messages: list[Message], meta: CharacterMeta) -> list[Message]:
    chinese = any(_CJK.search(v or "") for v in (meta.bot_name, meta.bot_info, meta.user_name, meta.user_info))
    bot = (meta.bot_name or "").strip() or ("角色" if chinese else "Character")
    user = (meta.user_name or "").strip() or ("用户" if chinese else "User")
    persona = _persona(bot, user, meta.bot_info, meta.user_info, chinese)
    system = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    head: Message = {"role": "system", "content": "\n\n".join([persona, *system])}
    turns: list[Message] = []
    for message in messages:
        if message["role"] == "system":
            continue
        if message["role"] == "user":
            separator = "：" if chinese else ": "
            message = {**message, "content": f"{user}{separator}{message['content']}"}
        turns.append(message)
    return [head, *turns]


def _persona(bot: str, user: str, bot_info: str | None, user_info: str | None, chinese: bool) -> str:
    if chinese:
        lines = [
            f"以下是一段{bot}与{user}之间的角色扮演对话。你就是{bot}：请始终以{bot}的身份、性格和口吻回复{user}，"
            "不要跳出角色，也不要说自己是人工智能。"
        ]
        if bot_info:
            lines.append(f"关于{bot}的信息：{bot_info.strip()}")
        if user_info:
            lines.append(f"关于{user}的信息：{user_info.strip()}")
    else:
        lines = [
            f"The following is a role-play conversation between {bot} and {user}. You are {bot}: always answer "
            f"{user} as {bot}, in {bot}'s voice and character; never step out of the role or say you are an AI."
        ]
        if bot_info:
            lines.append(f"About {bot}: {bot_info.strip()}")
        if user_info:
            lines.append(f"About {user}: {user_info.strip()}")
    return "\n\n".join(lines)
