"""Pausing jobs and adapters in the storage quota: ``jobs.pause_requested_at`` (a pause a running job's worker has
not acted on yet) and ``fine_tuned_models.bytes`` (the adapter blob's size, counted in the account's storage).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openglm.store.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("pause_requested_at", UTCDateTime(), nullable=True))
    # Models made before adapters were counted keep 0 bytes: their adapters were never charged, so deleting them
    # gives nothing back.
    op.add_column("fine_tuned_models", sa.Column("bytes", sa.BigInteger(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuned_models") as batch:
        batch.drop_column("bytes")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pause_requested_at")
