"""Alembic migrations (async template). Applied by ``python -m bot migrate`` and on start."""
