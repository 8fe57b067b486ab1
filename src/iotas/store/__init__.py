"""Persistence: SQLAlchemy Core schema, migrations and repositories for SQLite and PostgreSQL."""
