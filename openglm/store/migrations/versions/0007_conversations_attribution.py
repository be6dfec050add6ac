"""Stored conversations (the assistant API's and GLM chats'), and usage attributed to the agent it went through.

``usage_records`` gains ``agent_id``, ``agent_owner`` (the agent's creator's account) and ``agent_share`` (what
the creator was credited, nano-yuan). Adding nullable columns leaves its append-only triggers as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openglm.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("assistant_id", sa.String(200), nullable=False),
        sa.Column("agent_version", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_conversations_recent", "conversations", ["account_id", "assistant_id", "updated_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("conversation_id", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.Text(), nullable=True),
        sa.Column("attachments", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "conversation_id"],
            ["conversations.account_id", "conversations.id"],
            ondelete="CASCADE",
        ),
    )
    # Plain ADD COLUMN on both databases (no table rebuild, so the append-only triggers stay in place).
    op.add_column("usage_records", sa.Column("agent_id", sa.String(40), nullable=True))
    op.add_column("usage_records", sa.Column("agent_owner", sa.String(40), nullable=True))
    op.add_column("usage_records", sa.Column("agent_share", sa.BigInteger(), nullable=True))
    op.create_index("ix_usage_agent_created", "usage_records", ["agent_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_agent_created", "usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("agent_share")
        batch.drop_column("agent_owner")
        batch.drop_column("agent_id")
    op.drop_table("conversation_messages")
    op.drop_table("conversations")
