"""Alembic's entry point: always on the connection (and inside the transaction) that
:func:`flexopt.telemetry.migrate.upgrade` opened and locked; flexopt never runs Alembic offline."""

from __future__ import annotations

from alembic import context

from flexopt.telemetry.migrate import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
