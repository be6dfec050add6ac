"""Balance reservations (issue #12, item 3) and the key a key was made with (item 4).

- ``balance_reservations``: one row per admitted call (its maximum cost), deleted when the call settles or, once
  its holder stopped renewing it, when it expires. Admission inserts it with one statement that selects the
  account's balance row (locked ``FOR UPDATE`` on PostgreSQL) on the condition ``balance - reserved > 0``, so
  concurrent admissions on any number of replicas serialize on that row.
- ``account_balances.reserved``: the sum of the account's reservations, moved by triggers on every insert and
  delete of one (as 0003's triggers move ``balance``): no code path can forget it.
- ``api_keys.parent_id``: a key made through the console with another key records it; admission checks the
  limits of every key up the chain.

Added with plain ADD COLUMN, not a table rebuild: the balance triggers of 0003 name ``account_balances``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openglm.store.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "account_balances", sa.Column("reserved", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
    )
    op.create_table(
        "balance_reservations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_reservations_account", "balance_reservations", ["account_id", "expires_at"])
    op.create_index("ix_reservations_expiry", "balance_reservations", ["expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_api_keys_parent", "api_keys", ["parent_id"], ["id"])


def _sqlite_triggers() -> None:
    op.execute(
        "CREATE TRIGGER balance_reservations_hold AFTER INSERT ON balance_reservations BEGIN "
        "UPDATE account_balances SET reserved = reserved + NEW.amount WHERE account_id = NEW.account_id; END"
    )
    op.execute(
        "CREATE TRIGGER balance_reservations_release AFTER DELETE ON balance_reservations BEGIN "
        "UPDATE account_balances SET reserved = reserved - OLD.amount WHERE account_id = OLD.account_id; END"
    )


def _postgres_triggers() -> None:
    op.execute(
        "CREATE FUNCTION openglm_hold_reservation() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE account_balances SET reserved = reserved + NEW.amount WHERE account_id = NEW.account_id; "
        "RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER balance_reservations_hold AFTER INSERT ON balance_reservations "
        "FOR EACH ROW EXECUTE FUNCTION openglm_hold_reservation()"
    )
    op.execute(
        "CREATE FUNCTION openglm_release_reservation() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE account_balances SET reserved = reserved - OLD.amount WHERE account_id = OLD.account_id; "
        "RETURN OLD; END $$"
    )
    op.execute(
        "CREATE TRIGGER balance_reservations_release AFTER DELETE ON balance_reservations "
        "FOR EACH ROW EXECUTE FUNCTION openglm_release_reservation()"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_parent", type_="foreignkey")
        batch.drop_column("parent_id")
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger in ("balance_reservations_release", "balance_reservations_hold"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON balance_reservations" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS openglm_release_reservation()")
        op.execute("DROP FUNCTION IF EXISTS openglm_hold_reservation()")
    op.drop_index("ix_reservations_expiry", "balance_reservations")
    op.drop_index("ix_reservations_account", "balance_reservations")
    op.drop_table("balance_reservations")
    op.drop_column("account_balances", "reserved")
