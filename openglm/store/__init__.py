"""Persistence: SQLAlchemy 2 models, Alembic migrations, one ``Database`` for SQLite and PostgreSQL."""
