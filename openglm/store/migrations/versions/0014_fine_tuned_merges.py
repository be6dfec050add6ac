"""Merged fine-tunes: a fine-tuned model's latest merge job and, once merged, its full GGUF (a blob) and type.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fine_tuned_models") as batch:
        batch.add_column(sa.Column("merge_job_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("merged_blob", sa.String(128), nullable=True))
        batch.add_column(sa.Column("merged_type", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuned_models") as batch:
        batch.drop_column("merged_type")
        batch.drop_column("merged_blob")
        batch.drop_column("merge_job_id")
