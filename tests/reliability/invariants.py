"""What must hold after any run, however rough: every send terminal, nobody mailed twice,
nobody lost, the counters equal to the sends table."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from herald.marketing.models import SendStatus
from herald.runtime import Runtime
from tests.marketing.engine import assert_counters_match_sends, campaign, sends

TERMINAL = {SendStatus.DELIVERED.value, SendStatus.FAILED.value, SendStatus.UNKNOWN.value}


@dataclass
class Outcome:
    recipients: int
    delivered: int
    failed: int
    unknown: int
    unknown_received: int
    duplicates: int
    lost: int


def check_campaign(
    runtime: Runtime, campaign_id: uuid.UUID, eligible: set[str], received: Counter[str]
) -> Outcome:
    """Assert the invariants; return the figures for the report."""
    rows = sends(runtime, campaign_id)
    by_status = Counter(s.status for s in rows)
    problems: list[str] = []
    if {s.email.lower() for s in rows} != eligible or len(rows) != len(eligible):
        problems.append(f"{len(rows)} sends for {len(eligible)} eligible contacts")
    not_terminal = [s.id for s in rows if s.status not in TERMINAL]
    if not_terminal:
        problems.append(f"{len(not_terminal)} sends not terminal, e.g. {not_terminal[:5]}")
    duplicates = sorted(a for a, n in received.items() if n > 1)
    if duplicates:
        problems.append(f"{len(duplicates)} addresses got two messages, e.g. {duplicates[:5]}")
    lost = []
    for s in rows:
        got = received[s.email.lower()]
        if s.status == SendStatus.DELIVERED.value and got != 1:
            lost.append(f"{s.email} DELIVERED but received {got}")
        elif s.status == SendStatus.FAILED.value and (got != 0 or not s.error):
            lost.append(f"{s.email} FAILED (error {s.error!r}) and received {got}")
        elif s.status == SendStatus.UNKNOWN.value and not s.error:
            lost.append(f"{s.email} UNKNOWN without a reason")
    if lost:
        problems.append(f"{len(lost)} sends lost or misreported, e.g. {lost[:5]}")
    assert not problems, "; ".join(problems)
    assert campaign(runtime, campaign_id).status == "SENT"
    assert_counters_match_sends(runtime, campaign_id)
    return Outcome(
        recipients=len(rows),
        delivered=by_status[SendStatus.DELIVERED.value],
        failed=by_status[SendStatus.FAILED.value],
        unknown=by_status[SendStatus.UNKNOWN.value],
        unknown_received=sum(
            1 for s in rows if s.status == SendStatus.UNKNOWN.value and received[s.email.lower()]
        ),
        duplicates=len(duplicates),
        lost=len(lost),
    )


def unknown_reasons(runtime: Runtime, campaign_id: uuid.UUID) -> Counter[str]:
    return Counter(
        (s.error or "")[:60] for s in sends(runtime, campaign_id) if s.status == "UNKNOWN"
    )
