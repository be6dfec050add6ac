"""Content safety: every moderation hit (``moderation_hits``), and a key's safety setting (``api_keys.safety``:
on | optional | off).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openglm.store.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "moderation_hits",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("checker", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("matched", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_moderation_hits_account", "moderation_hits", ["account_id", "created_at"])
    op.create_index("ix_moderation_hits_created", "moderation_hits", ["created_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("safety", sa.String(16), nullable=False, server_default="on"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("safety")
    op.drop_index("ix_moderation_hits_created", "moderation_hits")
    op.drop_index("ix_moderation_hits_account", "moderation_hits")
    op.drop_table("moderation_hits")
