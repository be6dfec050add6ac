"""``retrieval``: the agent searches a knowledge base (``{"type": "retrieval", "retrieval": {"knowledge_id"}}``),
through the same ``Retriever`` as chat's retrieval tool and the retrieval test, and cites chunks as ``[n]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import InvalidFieldError
from ...knowledge.chat import knowledge_text
from ...knowledge.retrieval import Retrieval, RetrievalOptions, RetrievedChunk
from ...serving.usage import UsageBound, new_usage_id, token_bound
from .base import AgentTool, ToolContext, ToolResources, ToolResult, ToolUnavailable, agent_tools

if TYPE_CHECKING:
    from ...knowledge.service import KnowledgeService


@agent_tools.register("retrieval")
class RetrievalTool(AgentTool):
    type = "retrieval"
    function_name = "retrieval"
    input_argument = "query"

    def __init__(self, knowledge: KnowledgeService):
        self.knowledge = knowledge

    @classmethod
    async def open(cls, resources: ToolResources) -> RetrievalTool:
        if resources.knowledge is None:
            raise ToolUnavailable("knowledge bases are not available on this server")
        return cls(resources.knowledge)

    def definition(self, context: ToolContext) -> dict[str, Any]:
        return {
            "name": self.function_name,
            "description": (
                "Search the user's knowledge base. Returns numbered excerpts; cite the ones you use as [n]. "
                "Ask in the words the documents would use."
            ),
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        }

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        query = str(arguments.get("query", "")).strip()
        if not query:
            return ToolResult([], "[retrieval needs a query]")
        knowledge_ids = knowledge_ids_of(context.options)
        options = RetrievalOptions(top_k=int(context.options.get("top_k", 5)))
        owner = context.resource_account
        bases = [await self.knowledge.store.get(owner, knowledge_id) for knowledge_id in knowledge_ids]
        spec = self.knowledge.embeddings.resolve(bases[0].embedding_model)
        bound = UsageBound(prompt_tokens=token_bound(query) * len(bases))  # the query, embedded once per base
        call = await context.billing(spec, "knowledge.retrieve", bound) if context.billing else None
        if call is not None:
            call.bind(new_usage_id("ret"), None)
        found: list[RetrievedChunk] = []
        try:
            for base in bases:
                _, retrieval = await self.knowledge.retrieve(owner, base.id, query, options)
                found.extend(retrieval.chunks)
                if call is not None:
                    call.tally.prompt_tokens += retrieval.query_tokens
        except BaseException:
            if call is not None:
                await call.abandon()
            raise
        if call is not None:
            await call.settle("succeeded")
        found.sort(key=lambda item: -item.score)
        retrieval = Retrieval(query, found[: options.top_k])
        outputs = [
            {
                "text": item.chunk.text,
                "document": item.chunk.document_name,
                "document_id": item.chunk.document_id,
                "chunk_id": item.chunk.id,
                "start": item.chunk.start,
                "end": item.chunk.end,
            }
            for item in retrieval.chunks
        ]
        observation = (
            knowledge_text(retrieval.chunks) if retrieval.chunks else "[nothing in the knowledge base matches]"
        )
        return ToolResult(outputs, observation)


def knowledge_ids_of(options: dict[str, Any]) -> list[str]:
    """``knowledge_id`` (Zhipu's, one) or ``knowledge_ids`` (several; a GLM's)."""
    ids = options.get("knowledge_ids") or ([options["knowledge_id"]] if options.get("knowledge_id") else [])
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str | int) and str(i) for i in ids):
        raise InvalidFieldError("tools: retrieval needs retrieval.knowledge_id")
    return [str(i) for i in ids][:8]
