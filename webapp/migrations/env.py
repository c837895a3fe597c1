"""Alembic's environment: migrations run on the connection webapp.db.migrate hands over
(inside its transaction and, on PostgreSQL, its lock), never on one of their own."""
from alembic import context

from webapp.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
