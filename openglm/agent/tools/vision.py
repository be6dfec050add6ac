"""``vision``: an All Tools agent looks at the images a user attached by asking a catalog model that sees
(``vision = true``). The agent's loop numbers the images of the user's messages (``[image 1]``, ...) in the text
its model reads and hands them to this tool, so a model that cannot see still answers about them; the question and
the image go to the vision model as one chat call, billed to the caller like the agent's own rounds."""

from __future__ import annotations

from typing import Any

from ...protocol.chat import ChatCompletionRequest, ChatMessage, ContentPart
from ...serving.responses import collect_chat
from ...serving.service import ChatService
from ...serving.usage import Tally
from ..browser.images import ImageInputs
from ..state import ConversationState
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools

ANSWER_TOKENS = 256


@agent_tools.register("vision")
class VisionTool(AgentTool):
    type = "vision"
    function_name = "look_at_image"
    input_argument = "question"

    def __init__(self, chat: ChatService, model: str, images: ImageInputs):
        self.chat = chat
        self.model = model
        self.images = images
        self._attached: ConversationState[list[str]] = ConversationState()

    @classmethod
    async def open(cls, resources: ToolResources) -> VisionTool:
        chat = resources.chat
        if chat is None:
            raise ToolUnavailable("no chat service to ask a vision model")
        served = {s.spec.id for s in chat.models.served()}
        seeing = [spec.id for spec in chat.models.catalog.specs if spec.vision and spec.id in served]
        if not seeing:
            raise ToolUnavailable("no catalog model sees images (vision = true)")
        return cls(chat, seeing[0], ImageInputs(resources.fetcher))

    def attached(self, conversation: str) -> list[str]:
        return self._attached.get(conversation) or []

    def attach(self, conversation: str, urls: list[str]) -> None:
        """The user's new images, numbered after the conversation's earlier ones."""
        self._attached.set(conversation, [*self.attached(conversation), *urls])

    def definition(self, context: ToolContext) -> dict[str, Any]:
        count = len(self.attached(context.conversation))
        return {
            "name": self.function_name,
            "description": (
                f"Look at an image the user attached ({count} so far, shown as [image 1], [image 2], ...) and answer "
                "a question about it."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "image": {"type": "integer", "description": "the image's number", "minimum": 1},
                    "question": {"type": "string", "description": "what to find out about the image"},
                },
                "required": ["question"],
            },
        }

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        images = self.attached(context.conversation)
        try:
            n = int(arguments.get("image", 1))
        except (TypeError, ValueError):
            n = 0
        if not 1 <= n <= len(images):
            return ToolResult([], f"[there is no image {arguments.get('image')!r}: the user attached {len(images)}]")
        question = str(arguments.get("question") or "Describe the image.")
        content = [
            ContentPart(type="text", text=question),
            ContentPart(type="image_url", image_url={"url": images[n - 1]}),
        ]
        request = await self.images.resolved(
            ChatCompletionRequest(
                model=self.model, messages=[ChatMessage(role="user", content=content)], max_tokens=ANSWER_TOKENS
            )
        )
        planned = await self.chat.plan(request)
        spec = self.chat.models.get(self.model).spec
        call = await context.billing(spec, "chat.completions", planned.usage_bound()) if context.billing else None
        if call is not None:
            call.bind(planned.id, None)
        tally = call.tally if call is not None else Tally()
        try:
            run = await self.chat.submit(planned)
            tally.prompt_tokens = run.prompt_tokens
            completion = await collect_chat(self.chat, run, tally)
        except BaseException:
            if call is not None:  # what the vision model produced is paid for; nothing produced, nothing charged
                await (call.settle("failed") if tally.generated else call.abandon())
            raise
        if call is not None:
            await call.settle("succeeded")
        answer = completion.choices[0].message.content or ""
        return ToolResult([{"image": n, "answer": answer}], f"Image {n}: {answer}")
