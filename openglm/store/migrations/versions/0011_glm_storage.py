"""GLM versions count against their account's storage quota: each version row records the UTF-8 size of its
configuration, and every account's ``used_bytes`` is raised by what its GLMs already keep.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The bytes of an account's GLM versions, by account (WHERE true: SQLite's INSERT … SELECT … ON CONFLICT needs one).
KEPT = (
    "SELECT a.account_id AS account_id, SUM(v.bytes) AS kept FROM agent_versions v "
    "JOIN agents a ON a.id = v.agent_id WHERE true GROUP BY a.account_id"
)


def upgrade() -> None:
    with op.batch_alter_table("agent_versions") as batch:
        batch.add_column(sa.Column("bytes", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    size = "octet_length(config)" if op.get_bind().dialect.name == "postgresql" else "length(CAST(config AS BLOB))"
    op.execute(f"UPDATE agent_versions SET bytes = {size}")
    op.execute(
        "INSERT INTO account_storage (account_id, used_bytes, quota_bytes) "
        f"SELECT account_id, kept, NULL FROM ({KEPT}) AS glms WHERE true "
        "ON CONFLICT (account_id) DO UPDATE SET used_bytes = account_storage.used_bytes + excluded.used_bytes"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE account_storage SET used_bytes = used_bytes - COALESCE((SELECT kept FROM "
        f"({KEPT}) AS glms WHERE glms.account_id = account_storage.account_id), 0)"
    )
    with op.batch_alter_table("agent_versions") as batch:
        batch.drop_column("bytes")
