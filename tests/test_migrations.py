"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from herald import migrate
from herald.models import metadata


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"herald_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_head_then_check_finds_no_drift(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.check(fresh_database_url)  # raises if the models and migrations disagree
    engine = create_engine(fresh_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables


def test_upgrade_is_idempotent(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    migrate.upgrade(fresh_database_url)
    migrate.check(fresh_database_url)
