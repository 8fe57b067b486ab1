"""Persistence: SQLAlchemy Core schema, migrations and repositories for SQLite and PostgreSQL."""

# Tables defined outside `schema` join its metadata here, so the schema is complete whatever
# module is imported first (the migrations are checked against it).
from iotas.store import directory_schema as directory_schema
from iotas.store import wot_schema as wot_schema
