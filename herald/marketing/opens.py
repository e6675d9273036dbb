"""Unique opens from the open pixel: its hits, buffered, counted once per send that went
out, each human or machine (herald.marketing.classify, herald.marketing.engagement)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import Session

from herald.db import utcnow
from herald.marketing import engagement
from herald.marketing.classify import Reason
from herald.marketing.hits import HitRecorder
from herald.runtime import Runtime

# (token, the request's machine reason or "" for none): equal hits count once.
OpenHit = tuple[str, str]


def record_opens(session: Session, hits: list[OpenHit]) -> int:
    """Mark these sends opened (human or machine) and move their campaigns' counters;
    returns how many sends changed their figures."""
    now = utcnow()
    reasons: dict[str, list[str]] = defaultdict(list)
    for token, reason in hits:
        reasons[token].append(reason)
    # Only sends without a human open yet: a hit changes nothing on the others, so a
    # flood of repeated opens costs one indexed read per token.
    sends = engagement.load(session, sorted(reasons), without_human_open=True)
    for send in sends:
        for reason in sorted(reasons[send.token], reverse=True):  # machine first, then human
            send.opened(now, Reason(reason) if reason else None)
    moves = engagement.save(session, sends)
    return sum(move["opens"] for move in moves.values())


def open_recorder(runtime: Runtime, interval: float) -> HitRecorder[OpenHit]:
    """The pixel's recorder: its hits are (token, machine reason)."""
    return HitRecorder(runtime, record_opens, "opens", interval)
