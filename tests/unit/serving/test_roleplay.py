"""CharGLM role-play: ``meta`` rendered as a persona block at the head and the user's turns under their name."""

from __future__ import annotations

from openglm.protocol.chat import CharacterMeta
from openglm.serving.roleplay import with_character
from openglm.serving.templates.base import Message

TURNS: list[Message] = [
    {"role": "system", "content": "Keep answers short."},
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好呀", "tool_calls": []},
    {"role": "user", "content": "最近在忙什么？"},
]


def test_a_chinese_persona_heads_the_conversation_and_names_the_user_s_turns() -> None:
    meta = CharacterMeta(bot_name="苏梦远", bot_info="一位当红歌手。", user_name="陆星辰", user_info="一位导演。")
    rendered = with_character(TURNS, meta)
    head = rendered[0]
    assert head["role"] == "system"
    assert head["content"].startswith("以下是一段苏梦远与陆星辰之间的角色扮演对话。你就是苏梦远")
    assert "关于苏梦远的信息：一位当红歌手。" in head["content"] and "关于陆星辰的信息：一位导演。" in head["content"]
    assert head["content"].endswith("Keep answers short.")  # the caller's own system prompt follows the persona
    assert [m["role"] for m in rendered] == ["system", "user", "assistant", "user"]
    assert rendered[1]["content"] == "陆星辰：你好" and rendered[3]["content"] == "陆星辰：最近在忙什么？"
    assert rendered[2]["content"] == "你好呀"  # the bot's turns stay unnamed


def test_an_english_persona_and_missing_names() -> None:
    rendered = with_character([{"role": "user", "content": "Hi"}], CharacterMeta(bot_info="A grumpy pirate."))
    assert rendered[0]["content"].startswith("The following is a role-play conversation between Character and User.")
    assert "About Character: A grumpy pirate." in rendered[0]["content"]
    assert rendered[1] == {"role": "user", "content": "User: Hi"}
