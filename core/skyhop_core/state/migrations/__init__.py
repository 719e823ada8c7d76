"""Alembic migrations of the state store (run by :func:`skyhop_core.state.migrate.upgrade`)."""
