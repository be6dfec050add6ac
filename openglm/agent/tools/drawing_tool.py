"""``drawing_tool``: pictures from the image providers, with multi-turn editing — the conversation's last
prompt is shown to the model, which revises it rather than starting over."""

from __future__ import annotations

from typing import Any

from ...files.store import FileStore
from ...images.service import ImageService, Picture, data_url
from ...serving.usage import Tally, UsageBound, new_usage_id
from ..state import ConversationState
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools


@agent_tools.register("drawing_tool")
class DrawingTool(AgentTool):
    type = "drawing_tool"
    function_name = "cogview"
    input_argument = "prompt"

    def __init__(self, images: ImageService, files: FileStore | None = None):
        self.images = images
        self.files = files
        self._last_prompt: ConversationState[str] = ConversationState()

    @classmethod
    async def open(cls, resources: ToolResources) -> DrawingTool:
        if not resources.images.available:
            raise ToolUnavailable("no image model is in the catalog")
        return cls(resources.images, resources.files)

    def definition(self, context: ToolContext) -> dict[str, Any]:
        description = "Draw a picture from a detailed description (the prompt)."
        previous = self._last_prompt.get(context.conversation)
        if previous is not None:
            description += (
                f" The last picture in this conversation was drawn from: {previous!r}. To change it, call again with"
                " that prompt revised (keep what the user did not ask to change)."
            )
        return {
            "name": self.function_name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"prompt": {"type": "string", "description": "what to draw"}},
                "required": ["prompt"],
            },
        }

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        prompt = str(arguments.get("prompt", "")).strip()
        if not prompt:
            return ToolResult([], "[cogview needs a prompt]")
        spec = self.images.resolve(context.options.get("model"))
        bound = UsageBound(images=1)  # one picture
        call = await context.billing(spec, "images.generations", bound) if context.billing else None
        if call is not None:
            call.bind(new_usage_id("img"), None)
        tally = call.tally if call is not None else Tally()
        try:
            pictures = await self.images.draw(context.account_id, spec, prompt, files=self.files, tally=tally)
        except BaseException:
            if call is not None:  # drawn but not kept is charged (the provider was paid); not drawn is not
                await (call.settle("failed") if tally.images else call.abandon())
            raise
        if call is not None:
            await call.settle("succeeded")
        outputs = [{"image": self._link(context, picture)} for picture in pictures]
        self._remember(context.conversation, prompt)
        observation = f"Drew {len(pictures)} picture(s) from the prompt {prompt!r}; the user can see them."
        return ToolResult(outputs, observation)

    def _link(self, context: ToolContext, picture: Picture) -> str:
        """A link through the files API (a file of the caller's account), or a data: URL without a file store."""
        if picture.file is None:
            return data_url(picture.image.png)
        return f"{context.base_url}v1/files/{picture.file.id}/content"

    def _remember(self, conversation: str, prompt: str) -> None:
        self._last_prompt.set(conversation, prompt)
