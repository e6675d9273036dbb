"""Alembic migrations, shipped inside the package so the CLI works from any directory."""
