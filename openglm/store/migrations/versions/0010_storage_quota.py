"""Per-account storage: the bytes an account keeps in the blob store and the operator's quota for it, backfilled
from the files it has.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_storage",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
    )
    op.execute(
        "INSERT INTO account_storage (account_id, used_bytes, quota_bytes) "
        "SELECT account_id, SUM(bytes), NULL FROM files GROUP BY account_id"
    )


def downgrade() -> None:
    op.drop_table("account_storage")
