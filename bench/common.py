"""What the benchmarks share: a free port, a licensed org with SMTP settings, fresh planner
statistics. Imported as `common` (the scripts run as `python bench/NAME.py`)."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def allow_loopback_smtp() -> None:
    """Let Herald (and the workers it starts) connect to the benchmark's SMTP sink on
    loopback, which the egress rule refuses by default."""
    os.environ.setdefault("HERALD_SMTP_ALLOWED_NETWORKS", "127.0.0.0/8")


def bench_org(session: Any, smtp_port: int, name: str = "") -> uuid.UUID:
    """A new org with the marketing licence and SMTP settings pointing at 127.0.0.1 (see
    allow_loopback_smtp)."""
    from herald.mailconfig.models import EmailConfig
    from herald.orgs.service import create_org

    org = create_org(session, name or f"Bench {uuid.uuid4().hex[:6]}", ["marketing"])
    session.add(
        EmailConfig(
            org_id=org.id,
            host="127.0.0.1",
            port=smtp_port,
            security="none",
            default_from_name="Bench Shop",
            default_from_email="news@bench.test",
        )
    )
    return org.id


def analyze(engine: Any, table: str = "") -> None:
    """Fresh planner statistics after a bulk load."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {table}".strip())
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far (Linux): steadier than
    a rate on a machine other work shares."""
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
