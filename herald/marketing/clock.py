"""The time leases, permits and schedules are measured in."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from herald.db import utcnow


def db_now(session: Session) -> dt.datetime:
    """The time leases are measured in. PostgreSQL's clock, so that workers on machines
    whose clocks disagree still agree on whose lease has run out; SQLite's workers share
    one machine and its clock.

    PostgreSQL's ``now()`` is the start of the transaction, so it is asked once per unit of
    work (each has its own session) instead of once per step of a chunk."""
    if session.get_bind().dialect.name == "postgresql":
        transaction = session.get_transaction()
        cached = session.info.get("db_now")
        if transaction is not None and cached and cached[0] is transaction:
            return cached[1]
        value = session.scalar(select(func.now()))
        assert isinstance(value, dt.datetime)
        value = value.astimezone(dt.UTC)
        session.info["db_now"] = (session.get_transaction(), value)
        return value
    return utcnow()
