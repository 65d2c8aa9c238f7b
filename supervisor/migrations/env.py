"""Alembic environment: the supervisor passes an open connection in config.attributes."""

from alembic import context

from supervisor.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the supervisor runs migrations
    raise RuntimeError("run migrations through supervisor.store.engine.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
