"""Alembic migrations of the telemetry database, run by :func:`flexopt.telemetry.migrate.upgrade` on open."""
