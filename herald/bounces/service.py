"""Bounce reports for the API and pages: the org's list, one report as received, and the
bounces an ADMIN adds by API (through the same ingest as every other source)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.bounces.ingest import Event, Incoming, Recorded, ingest
from herald.bounces.models import BounceReport, RawReport, ReportType, Source
from herald.bounces.repository import BounceRepository
from herald.bounces.schemas import BounceIn
from herald.errors import NotFound, ValidationFailed
from herald.mail.sendref import SendRefKeys
from herald.text import one_line


@dataclass(frozen=True)
class AddedBounce:
    report: Recorded | BounceReport
    repeat: bool = False  # the event was counted by an earlier report: this one


@dataclass(frozen=True)
class ReportPage:
    items: list[BounceReport]
    total: int
    page: int
    page_size: int


def list_reports(
    session: Session,
    org_id: uuid.UUID,
    *,
    report_type: ReportType | None = None,
    send_id: int | None = None,
    page: int = 1,
    page_size: int = 50,
) -> ReportPage:
    """Newest first; only one ``report_type``, or one send's reports, when given."""
    repo = BounceRepository(session, org_id)
    stmt = repo.newest_first(report_type.value if report_type else None)
    if send_id is not None:
        stmt = stmt.where(BounceReport.send_id == send_id)
    return ReportPage(repo.page(stmt, page, page_size), repo.count(stmt), page, page_size)


def _parse_report_id(value: str | int) -> int | None:
    try:
        parsed = int(value)
    except (TypeError, ValueError):
        return None
    return parsed if 0 < parsed < 2**63 else None


def get_report(session: Session, org_id: uuid.UUID, report_id: str | int) -> BounceReport:
    parsed = _parse_report_id(report_id)
    found = BounceRepository(session, org_id).find(parsed) if parsed else None
    if found is None:
        raise NotFound("Bounce report not found.")
    return found


def get_raw(session: Session, org_id: uuid.UUID, report_id: str | int) -> RawReport:
    """The report as received (at most its first 256 KiB; ``size`` is the whole)."""
    report = get_report(session, org_id, report_id)
    raw = BounceRepository(session, org_id).raw(report.raw_id)
    if raw is None:  # the raw row goes only with its reports (ON DELETE CASCADE)
        raise NotFound("Bounce report not found.")
    return raw


def add_bounce(
    session: Session,
    keys: SendRefKeys,
    org_id: uuid.UUID,
    data: BounceIn,
    raw: bytes,
    *,
    actor: audit.Actor,
) -> AddedBounce:
    """A bounce or complaint from the API (``raw``: the request body as received), recorded,
    matched and applied like any report, and audited. Each call matches the address's
    latest delivered send; the same event about that send again (a client's retry) is
    recorded as a repeat and answered with the report that counted it (``repeat``)."""
    try:
        email = validate_email(data.email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email is not a valid address: {exc}", field="email") from None
    event = Event(ReportType(data.type), email, one_line(data.reason))
    ingested = ingest(session, keys, Incoming(Source.API, raw, events=[event]), org_id)
    report = ingested.reports[0]
    if report.type == ReportType.IGNORED and report.send_id is not None:
        counted = BounceRepository(session, org_id).counted(report.send_id, email, data.type)
        if counted is not None:
            return AddedBounce(counted, repeat=True)
    audit.record(
        session,
        actor,
        "bounce.added",
        target=f"bounce report {report.id} {email}",
        details={"type": data.type, "recorded": report.type, "sendId": report.send_id},
    )
    return AddedBounce(report)
