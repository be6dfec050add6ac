"""Tables. Money is an integer number of nano-yuan (1e-9 CNY), so prices like 0.0005 CNY/1K tokens are exact.

The usage and ledger tables are append-only: triggers created by the migration refuse UPDATE and DELETE.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Small facts about the database itself (e.g. which master key sealed its secrets)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Account(Base):
    """An organisation: it owns keys, users and a balance."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    # scrypt (accounts/passwords.py) of the password for web sign-in; None: this user cannot sign in.
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """``<id>.<secret>``: the id is public and indexed; the secret is sealed with the server's master key.

    The secret cannot be hashed: Zhipu JWTs are HMAC-signed with it, so the server must be able to recompute them.
    """

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(16), default="user")  # user | admin
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled | deleted
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # NULL once deleted
    secret_hint: Mapped[str] = mapped_column(String(8), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, default=None)
    rpm: Mapped[int | None] = mapped_column(Integer, default=None)
    daily_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Made by a web sign-in (POST /auth/login), and deleted by its logout.
    web_session: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The key this one was made with (the console, called with a key): its limits bound this key's (migration 0009).
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    # Content safety for this key's calls (migration 0018): on | optional (a request may turn the checks off) | off.
    safety: Mapped[str] = mapped_column(String(16), default="on", server_default="on")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageRecord(Base):
    """Exactly one per billable call; its id is the response id the caller saw."""

    __tablename__ = "usage_records"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)  # nano-yuan
    status: Mapped[str] = mapped_column(String(16))  # succeeded | cancelled | failed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A call through an agent (a GLM): the agent, its creator's account, and what the creator was credited.
    agent_id: Mapped[str | None] = mapped_column(String(40), default=None)
    agent_owner: Mapped[str | None] = mapped_column(String(40), default=None)
    agent_share: Mapped[int | None] = mapped_column(BigInteger, default=None)  # nano-yuan

    __table_args__ = (
        Index("ix_usage_account_created", "account_id", "created_at"),
        Index("ix_usage_key_created", "key_id", "created_at"),
        Index("ix_usage_agent_created", "agent_id", "created_at"),
    )


class LedgerEntry(Base):
    """Every change of a balance; a balance is the sum of its account's entries."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))  # grant | topup | charge | refund | adjustment | share
    amount: Mapped[int] = mapped_column(BigInteger)  # nano-yuan, signed: charges are negative
    usage_id: Mapped[str | None] = mapped_column(ForeignKey("usage_records.id"), unique=True, default=None)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_ledger_account", "account_id", "id"),)


class AccountBalance(Base):
    """The running sum of an account's ledger entries, kept by database triggers on every insert (migration
    0003), so a balance check reads one row instead of summing a ledger that grows with every call. The ledger
    stays the source of truth: ``openglm db verify`` recomputes every sum and compares."""

    __tablename__ = "account_balances"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # nano-yuan
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    # The sum of the account's reservations (``balance_reservations``), moved by triggers on their inserts and
    # deletes (migration 0009): what calls in flight may still cost.
    reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # nano-yuan


class BalanceReservation(Base):
    """What one admitted call may cost at most, held against its account's balance until the call settles
    (migration 0009). A reservation whose holder stopped renewing it (a replica that died) expires and is swept,
    so it cannot lock a balance for good. Not part of the ledger: rows are deleted when released."""

    __tablename__ = "balance_reservations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # nano-yuan, > 0
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_reservations_account", "account_id", "expires_at"),
        Index("ix_reservations_expiry", "expires_at"),
    )


class File(Base):
    """An uploaded file or a tool's output; the bytes live in the blob store under the same id."""

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_files_account", "account_id", "purpose", "id"),)


class AccountStorage(Base):
    """The bytes an account keeps (the sum of its files' ``bytes`` and of its GLM versions' ``bytes``) and the
    operator's quota for it (NULL: the server's default, ``OPENGLM_STORAGE_QUOTA_MB``; -1: unlimited).
    ``files/quota.py`` moves ``used_bytes`` in the transaction that adds or removes a file or version row,
    conditional on staying within the quota (migrations 0010 and 0011 backfilled it; a row is made on an account's
    first file or GLM)."""

    __tablename__ = "account_storage"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)


class KnowledgeBase(Base):
    """A knowledge base: documents of one account, chunked and embedded by one embedding model.

    ``index_version`` moves with every change to its chunks, so an in-memory index (the embedded vector store)
    knows when to reload, in this process or after another one wrote."""

    __tablename__ = "knowledge_bases"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    background: Mapped[str] = mapped_column(String(32), default="")
    icon: Mapped[str] = mapped_column(String(32), default="")
    embedding_model: Mapped[str] = mapped_column(String(200))
    dimensions: Mapped[int] = mapped_column(Integer)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    overlap_tokens: Mapped[int] = mapped_column(Integer)
    separators: Mapped[str | None] = mapped_column(Text, default=None)  # JSON list of strings
    index_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_knowledge_account", "account_id", "id"),)


class KnowledgeDocument(Base):
    """A document of a knowledge base, from an uploaded file; ``text`` is its parsed text, which chunk spans
    point into. Ingestion moves ``status`` queued → parsing → embedding → ready (or failed, with ``error``)."""

    __tablename__ = "knowledge_documents"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    knowledge_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    name: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    characters: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[str | None] = mapped_column(Text, default=None)  # JSON: this document's chunking options
    text: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_knowledge_documents_kb", "knowledge_id", "id"),
        Index("ux_knowledge_documents_content", "knowledge_id", "content_hash", unique=True),
        Index("ix_knowledge_documents_status", "status"),
    )


class KnowledgeChunk(Base):
    """One chunk: its place in its document (index and character span, for citations), its text, and its
    embedding (float32, little-endian), kept here so any index can be rebuilt from the database."""

    __tablename__ = "knowledge_chunks"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the full-text index's rowid
    id: Mapped[str] = mapped_column(String(64), unique=True)  # <document id>-<index>, stable
    knowledge_id: Mapped[str] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    document_id: Mapped[str] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text)  # what full-text search indexes (headings, CJK bigrams)
    headings: Mapped[str] = mapped_column(Text, default="")  # JSON list: the section path
    page: Mapped[int | None] = mapped_column(Integer, default=None)
    kind: Mapped[str] = mapped_column(String(16), default="text")
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_knowledge_chunks_kb", "knowledge_id", "seq"),
        Index("ix_knowledge_chunks_document", "document_id", "position"),
    )


class Agent(Base):
    """A GLM: an agent someone built (instructions, model, tools), owned by an account. Its configuration lives
    in versions; ``version`` is the current one. ``visibility``: private (the owner's), link (anyone who knows
    the id), listed (also in the agent center)."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), default=None)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    avatar: Mapped[str] = mapped_column(String(500), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    recommended: Mapped[int] = mapped_column(Integer, default=0)  # an operator's ranking in the center; 0: none
    version: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_agents_account", "account_id", "created_at"),
        Index("ix_agents_center", "visibility", "recommended", "uses"),
    )


class AgentVersion(Base):
    """One saved configuration of an agent (JSON: instructions, model, tools, knowledge bases, HTTP APIs,
    starter prompts). Never changed once written; conversations record the version they used. ``bytes`` (the
    config's UTF-8 size) is what it counts against its account's storage quota (migration 0011)."""

    __tablename__ = "agent_versions"
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Conversation(Base):
    """A stored conversation with an assistant (a GLM or a catalog agent), private to its account. The id is the
    ``conversation_id`` clients see, unique per account. ``agent_version`` is the GLM version it started with
    and keeps (NULL for catalog agents)."""

    __tablename__ = "conversations"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    assistant_id: Mapped[str] = mapped_column(String(200))
    agent_version: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(String(200), default="")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_conversations_recent", "account_id", "assistant_id", "updated_at"),)


class ConversationMessage(Base):
    """One message of a conversation, in order (``seq``). ``tool_calls``: JSON list of ``{type, input, outputs}``
    collapsed from the stream; ``attachments``: JSON list of ``{file_id, filename}`` given with a user message."""

    __tablename__ = "conversation_messages"
    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    tool_calls: Mapped[str | None] = mapped_column(Text, default=None)
    attachments: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "conversation_id"], ["conversations.account_id", "conversations.id"], ondelete="CASCADE"
        ),
    )


class Job(Base):
    """One background job (``openglm/jobs/``): what to run (``kind``, ``payload``), where it stands (``status``
    queued → running → succeeded | failed | cancelled, or paused between running and queued again), and who holds
    it. A worker claims a job by taking its
    lease (``lease_owner``, ``attempts`` incremented: the pair is the claim's token) until ``lease_expires_at``,
    renewed by heartbeats; a job whose lease expired is claimed again and its handler resumes from
    ``checkpoint``. Writes by the holder are conditional on the token, so a worker that lost its lease changes
    nothing. ``event_count`` numbers the job's events (``job_events.seq``). JSON columns are text."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first
    payload: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    progress: Mapped[str | None] = mapped_column(Text, default=None)  # what a client is shown
    checkpoint: Mapped[str | None] = mapped_column(Text, default=None)  # what the handler resumes from
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    pause_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # not acted on yet
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # a retry waits until then
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "created_at"),
        Index("ix_jobs_account", "account_id", "kind", "created_at"),
    )


class JobEvent(Base):
    """One progress event of a job, numbered from 1 in the order written (``seq``), for clients to poll."""

    __tablename__ = "job_events"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    level: Mapped[str] = mapped_column(String(16), default="info")  # info | warning | error
    message: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str | None] = mapped_column(Text, default=None)  # JSON object


class FineTunedModel(Base):
    """A model a fine-tuning job made: a LoRA adapter (a blob) on a catalog base model, private to its account.
    Clients call it by ``id`` (``ft:<base>:<suffix or owner>:<random>``); ``deleted`` hides it (the adapter blob is
    removed, the row stays so the id is never reused and usage records keep their meaning)."""

    __tablename__ = "fine_tuned_models"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    base_model: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[str] = mapped_column(String(64), unique=True)  # one model per job, also when a job is re-run
    adapter_blob: Mapped[str] = mapped_column(String(128))
    # The adapter blob's size, counted in the account's storage quota while the model exists.
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    owned_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Merging (migration 0014): the latest merge job asked for the model, and once one succeeded the full GGUF with
    # the adapter merged in (a blob) and its type (Q4_1, F16, ...); serving then loads that file as an engine of its
    # own instead of applying the adapter on the base.
    merge_job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    merged_blob: Mapped[str | None] = mapped_column(String(128), default=None)
    merged_type: Mapped[str | None] = mapped_column(String(16), default=None)

    __table_args__ = (Index("ix_fine_tuned_models_account", "account_id", "deleted", "created_at"),)


class EvalRun(Base):
    """An eval run started through the API (``openglm/evals/runs.py``): what was asked (suites, models, the task
    choice), and once it succeeded its report: ``summaries`` (suite → model → headline numbers) and ``results``
    (suite → model → outcomes), JSON text, apart so that listing runs does not read every outcome. Its status and
    progress are its job's (``id`` is the ``eval_run`` job's id). ``key_id``: the short-lived key the run calls the
    API with, while it lives (revoked and cleared when the run ends). Migration 0016."""

    __tablename__ = "eval_runs"
    id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    suites: Mapped[str] = mapped_column(Text)  # JSON list of suite names
    models: Mapped[str] = mapped_column(Text)  # JSON list of model names
    split: Mapped[str | None] = mapped_column(String(16), default=None)  # train | heldout | None: both
    per_family: Mapped[int | None] = mapped_column(Integer, default=None)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    total_tasks: Mapped[int] = mapped_column(Integer, default=0)  # tasks × models, counted when it was asked
    key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    summaries: Mapped[str | None] = mapped_column(Text, default=None)
    results: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_eval_runs_account", "account_id", "created_at"),)


class Batch(Base):
    """A batch (``openglm/batches/``): its input file's lines run through the run service by a ``batch`` job
    (``job_id``), at the batch price. Status validating → in_progress → finalizing → completed, or failed (its
    input refused, or its balance ran out), expired (past ``expires_at``), cancelling → cancelled. Counts and
    token totals move as lines finish; each line's answer is a ``batch_lines`` row until the output and error
    files are written. ``errors`` and ``metadata`` are JSON text. Migration 0017."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    key_id: Mapped[str | None] = mapped_column(String(64), default=None)  # the key that made it: its calls' key
    user_id: Mapped[str | None] = mapped_column(String(64), default=None)
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    endpoint: Mapped[str] = mapped_column(String(64))  # /v1/chat/completions | /v1/embeddings
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16), default="24h")
    metadata_json: Mapped[str | None] = mapped_column(Text, default=None)
    auto_delete_input_file: Mapped[bool] = mapped_column(Boolean, default=False)
    base_url: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="validating")
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    error_file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    errors: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_batches_account", "account_id", "created_at"),)


class BatchLine(Base):
    """One finished line of a batch: its answer (``ok``: the response body) or its error, JSON text; a line with a
    row is not run again when the batch's job resumes."""

    __tablename__ = "batch_lines"
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, as in the input file
    custom_id: Mapped[str] = mapped_column(String(512))
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


class ModerationHit(Base):
    """A content-safety hit (``openglm/safety/``): which checker, in which category, on which call — the input
    refused (1301), an answer stopped as ``sensitive``, or a ``POST /moderations`` text. ``matched`` is what a word
    list hit (normalized, at most 200 characters); a judge's verdict has none. Migration 0018."""

    __tablename__ = "moderation_hits"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))  # input | output | moderations
    checker: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    matched: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_moderation_hits_account", "account_id", "created_at"),
        Index("ix_moderation_hits_created", "created_at"),
    )


class StoredResponse(Base):
    """A Responses API answer kept for ``GET /v1/responses/{id}`` and ``previous_response_id`` (``store`` not
    false): the answer as returned, the input items it was given, and the whole conversation after it as chat
    messages (what a follow-up continues from). Private to its account. Migration 0019."""

    __tablename__ = "responses"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), default=None)
    usage_id: Mapped[str | None] = mapped_column(String(80), default=None)  # the usage record it was billed as
    response_json: Mapped[str] = mapped_column(Text)
    input_json: Mapped[str] = mapped_column(Text)
    conversation_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_responses_account", "account_id", "created_at"),)
