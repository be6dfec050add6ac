"""Account balances kept next to the ledger (one row per account), backfilled from the ledger and kept by
triggers: a new account gets a row, every ledger insert moves it in the same statement. The database, not the
application, keeps the two in step, so no code path (nor a raw INSERT) can forget to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_balances",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO account_balances (account_id, balance, entries) "
        "SELECT a.id, COALESCE(SUM(l.amount), 0), COUNT(l.id) FROM accounts a "
        "LEFT JOIN ledger_entries l ON l.account_id = a.id GROUP BY a.id"
    )

    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    op.execute(
        "CREATE TRIGGER accounts_open_balance AFTER INSERT ON accounts BEGIN "
        "INSERT INTO account_balances (account_id, balance, entries) VALUES (NEW.id, 0, 0); END"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_move_balance AFTER INSERT ON ledger_entries BEGIN "
        "UPDATE account_balances SET balance = balance + NEW.amount, entries = entries + 1 "
        "WHERE account_id = NEW.account_id; END"
    )


def _postgres_triggers() -> None:
    op.execute(
        "CREATE FUNCTION openglm_open_balance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO account_balances (account_id, balance, entries) VALUES (NEW.id, 0, 0); RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER accounts_open_balance AFTER INSERT ON accounts "
        "FOR EACH ROW EXECUTE FUNCTION openglm_open_balance()"
    )
    # The row lock this UPDATE takes orders concurrent charges to one account.
    op.execute(
        "CREATE FUNCTION openglm_move_balance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE account_balances SET balance = balance + NEW.amount, entries = entries + 1 "
        "WHERE account_id = NEW.account_id; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_move_balance AFTER INSERT ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION openglm_move_balance()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_move_balance" + _on("ledger_entries"))
    op.execute("DROP TRIGGER IF EXISTS accounts_open_balance" + _on("accounts"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS openglm_move_balance()")
        op.execute("DROP FUNCTION IF EXISTS openglm_open_balance()")
    op.drop_table("account_balances")


def _on(table: str) -> str:
    return f" ON {table}" if op.get_bind().dialect.name == "postgresql" else ""
