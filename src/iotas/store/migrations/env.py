"""Alembic environment: iotas always hands in an open connection (see store/migrate.py)."""

from alembic import context

from iotas.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
context.run_migrations()
