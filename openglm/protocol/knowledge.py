"""Wire models of the knowledge API: Zhipu's shapes (``/knowledge``, ``/document``, retrieval uploads through
``/files``) plus OpenGLM's chunk listing and retrieval test. No logic here."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from .common import WireModel

# A user's separators (Zhipu's ``custom_separator``, a base's ``separators``): each is looked for in the whole
# document, so their number and length are bounded (here on the wire, and by the knowledge service for the form
# upload's decoded list).
MAX_CUSTOM_SEPARATORS = 16
MAX_SEPARATORS = 32
MAX_SEPARATOR_CHARS = 64
Background = Literal["blue", "red", "orange", "purple", "sky"]
Icon = Literal["question", "book", "seal", "wrench", "tag", "horn", "house"]
Separator = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SEPARATOR_CHARS)]


class KnowledgeCreate(WireModel):
    # Zhipu's embedding_id numbers its own models; here any value picks the server's default model, and
    # ``embedding_model`` names a catalog embedding model.
    embedding_id: int | str | None = None
    embedding_model: str | None = None
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    background: Background | None = None
    icon: Icon | None = None
    bucket_id: str | None = Field(default=None, max_length=32)
    customer_identifier: str | None = Field(default=None, max_length=32)
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    overlap_tokens: int | None = Field(default=None, ge=0, le=4096)
    separators: list[Separator] | None = Field(default=None, max_length=MAX_SEPARATORS)


class KnowledgeEdit(WireModel):
    embedding_id: int | str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    background: Background | None = None
    icon: Icon | None = None


class KnowledgeInfo(BaseModel):
    id: str
    embedding_id: str
    embedding_model: str
    name: str
    description: str
    background: str | None = None
    icon: str | None = None
    chunk_tokens: int
    overlap_tokens: int
    created_at: int
    updated_at: int


class KnowledgePage(BaseModel):
    list: list[KnowledgeInfo]
    object: Literal["list"] = "list"
    total: int


class KnowledgeStatistics(BaseModel):
    word_num: int
    length: int


class KnowledgeUsed(BaseModel):
    used: KnowledgeStatistics
    total: KnowledgeStatistics


class DocumentSuccessInfo(BaseModel):
    documentId: str
    filename: str
    duplicate: bool = False


class DocumentFailedInfo(BaseModel):
    failReason: str
    filename: str
    documentId: str | None = None


class DocumentObject(BaseModel):
    successInfos: list[DocumentSuccessInfo]
    failedInfos: list[DocumentFailedInfo]


class DocumentFailInfo(BaseModel):
    embedding_code: int
    embedding_msg: str


class DocumentProgress(BaseModel):
    chunks_done: int
    chunks_total: int


class DocumentData(BaseModel):
    id: str
    knowledge_id: str
    name: str
    custom_separator: list[str] | None = None
    sentence_size: str | None = None  # a string, as both official SDKs declare it
    length: int  # characters of text
    word_num: int
    url: str | None = None
    embedding_stat: int  # 0 being embedded, 1 done, 2 failed (Zhipu's)
    status: str  # queued | parsing | embedding | ready | failed
    progress: DocumentProgress
    failInfo: DocumentFailInfo | None = None
    created_at: int


class DocumentPage(BaseModel):
    list: list[DocumentData]
    object: Literal["list"] = "list"
    total: int


class DocumentEdit(WireModel):
    knowledge_type: int | None = None
    custom_separator: list[Separator] | None = Field(default=None, max_length=MAX_CUSTOM_SEPARATORS)
    sentence_size: int | None = None


class ChunkData(BaseModel):
    id: str
    document_id: str
    document_name: str
    position: int
    start: int
    end: int
    page: int | None = None
    headings: list[str]
    kind: str
    tokens: int
    text: str


class ChunkPage(BaseModel):
    list: list[ChunkData]
    object: Literal["list"] = "list"
    total: int


class RetrievalRequest(WireModel):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    score_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)


class RetrievedChunkData(ChunkData):
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None


class RetrievalUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RetrievalResponse(BaseModel):
    object: Literal["knowledge.retrieval"] = "knowledge.retrieval"
    knowledge_id: str
    query: str
    mode: str
    chunks: list[RetrievedChunkData]
    usage: RetrievalUsage
