"""Alembic environment: always handed a live connection by ``openglm.store.db`` (or the test that checks drift)."""

from __future__ import annotations

from alembic import context

from openglm.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through openglm (`openglm db upgrade`), which supplies the connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
