"""The agent-tool interface and its registry."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...registry import Registry

if TYPE_CHECKING:
    from ...accounts.metering import MeteredCall
    from ...catalog import PricedModel
    from ...config import Settings
    from ...files.store import FileStore
    from ...images.service import ImageService
    from ...knowledge.service import KnowledgeService
    from ...serving.service import ChatService
    from ...serving.usage import UsageBound
    from ..browser.fetch import SafeFetcher


class Billing(Protocol):
    """Admission and metering of a billable call a tool makes on the caller's behalf (an image, say): ``bound``
    is the most it can use, whose cost is reserved before it runs."""

    async def __call__(self, spec: PricedModel, endpoint: str, bound: UsageBound) -> MeteredCall: ...


@dataclass(frozen=True)
class ToolContext:
    conversation: str
    account_id: str
    options: dict[str, Any] = field(default_factory=dict)  # the request's tool entry, e.g. {"sandbox": "none"}
    billing: Billing | None = None
    base_url: str = ""  # where the server is reached, for links to files it makes (…/v1/files/{id}/content)
    # Whose resources (knowledge bases) the tool reads: the caller's, or for a GLM its creator's. Set by the server
    # only, never from a request.
    resources_of: str | None = None

    @property
    def resource_account(self) -> str:
        return self.resources_of or self.account_id


@dataclass
class ToolResult:
    outputs: list[dict[str, Any]]  # what the client sees in the role:"tool" chunk
    observation: str  # what the model reads in the next round


class TextFilter(Protocol):
    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


@dataclass(frozen=True)
class ToolResources:
    """What the server hands its built-in tools when it opens them."""

    settings: Settings
    images: ImageService
    files: FileStore | None = None
    knowledge: KnowledgeService | None = None
    chat: ChatService | None = None  # for a tool that asks a catalog model (vision)
    fetcher: SafeFetcher | None = None  # addresses users give (public, or OPENGLM_HTTP_TOOLS_ALLOW)


class ToolUnavailable(Exception):
    """A built-in tool cannot be offered on this server (the reason is logged; requests naming it get a 400)."""


class AgentTool(abc.ABC):
    """A built-in tool (``{"type": "<type>"}`` in a request), offered to the model as one function.

    Built-ins are registered in ``agent_tools`` under their type; the server opens every registered one with
    ``open`` and closes it with ``close``.
    """

    type: str
    function_name: str
    # The argument whose text is streamed to the client as the call's ``input`` (e.g. the code).
    input_argument: str
    # False: the call streams as an OpenAI function call (name, argument fragments) instead.
    streams_input: bool = True

    @classmethod
    async def open(cls, resources: ToolResources) -> AgentTool:
        """The tool with its resources started; raises ``ToolUnavailable`` when this server cannot offer it."""
        raise ToolUnavailable(f"{cls.__name__} is not opened by the server")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop what ``open`` started."""

    @abc.abstractmethod
    def definition(self, context: ToolContext) -> dict[str, Any]:
        """An OpenAI function definition (name, description, parameters), for this conversation."""

    @abc.abstractmethod
    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...

    def text_filter(self, conversation: str) -> TextFilter | None:
        """A rewriter of the answer's text (the browser turns its citations into links); None: as written."""
        return None

    def runs_here(self, context: ToolContext) -> bool:
        """False when the client asked to run the call itself (``sandbox: "none"``)."""
        return True


# Built-in tools a request can name by type.
agent_tools: Registry[type[AgentTool]] = Registry("agent tool")
