"""Knowledge bases, their documents and chunks, and the chunks' full-text index.

On SQLite the full-text index is an FTS5 table over ``knowledge_chunks.search_text`` (external content, kept in
step by triggers; ranked by BM25). On PostgreSQL it is a GIN index on ``to_tsvector('simple', search_text)``.
``search_text`` is prepared in Python (words lower-cased, CJK runs as overlapping bigrams), so both engines
tokenize it the same simple way and Chinese text is searchable without a Chinese tokenizer in the database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openglm.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQLITE_FULL_TEXT = [
    "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5("
    "search_text, content='knowledge_chunks', content_rowid='seq', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(rowid, search_text) VALUES (new.seq, new.search_text); END",
    "CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, search_text) "
    "VALUES ('delete', old.seq, old.search_text); END",
    "CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE OF search_text ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, search_text) "
    "VALUES ('delete', old.seq, old.search_text); "
    "INSERT INTO knowledge_chunks_fts(rowid, search_text) VALUES (new.seq, new.search_text); END",
    # How many chunks hold each term: queries leave out the terms too common to tell chunks apart.
    "CREATE VIRTUAL TABLE knowledge_chunks_fts_vocab USING fts5vocab(knowledge_chunks_fts, row)",
]
POSTGRES_FULL_TEXT = [
    "CREATE INDEX ix_knowledge_chunks_search ON knowledge_chunks USING gin (to_tsvector('simple', search_text))",
]


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("background", sa.String(32), nullable=False),
        sa.Column("icon", sa.String(32), nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("chunk_tokens", sa.Integer(), nullable=False),
        sa.Column("overlap_tokens", sa.Integer(), nullable=False),
        sa.Column("separators", sa.Text(), nullable=True),
        sa.Column("index_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_knowledge_account", "knowledge_bases", ["account_id", "id"])
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "knowledge_id", sa.String(40), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_knowledge_documents_kb", "knowledge_documents", ["knowledge_id", "id"])
    op.create_index(
        "ux_knowledge_documents_content", "knowledge_documents", ["knowledge_id", "content_hash"], unique=True
    )
    op.create_index("ix_knowledge_documents_status", "knowledge_documents", ["status"])
    op.create_table(
        "knowledge_chunks",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "knowledge_id", sa.String(40), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "document_id",
            sa.String(40),
            sa.ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("headings", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_knowledge_chunks_kb", "knowledge_chunks", ["knowledge_id", "seq"])
    op.create_index("ix_knowledge_chunks_document", "knowledge_chunks", ["document_id", "position"])
    for statement in SQLITE_FULL_TEXT if op.get_bind().dialect.name == "sqlite" else POSTGRES_FULL_TEXT:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge_chunks_fts_vocab")
        op.execute("DROP TABLE knowledge_chunks_fts")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_documents")
    op.drop_table("knowledge_bases")
