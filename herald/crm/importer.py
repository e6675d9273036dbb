"""CSV import of contacts, streamed: the file is read record by record and written in chunks,
so memory stays flat whatever the number of rows.

The rules, as users see them:
- The first record is the header. Column names are the contact's JSON field names (email,
  firstName, lastName, companyName, status, marketingOptOut), matched ignoring case, spaces,
  ``_`` and ``-`` (so ``first_name`` and ``First Name`` work). Every column must be known and
  appear once; the delimiter is ``,``, or ``;`` / tab when the header uses that instead.
  The file must be UTF-8 (a BOM is fine).
- Line numbers are record numbers as a spreadsheet shows them: the header is line 1.
- A row whose email (case-insensitively) belongs to a contact of the org updates that contact,
  and so does a later row repeating an email of the same file: counted in ``updated``.
  On update the stored address stays as it was, a blank cell keeps the stored value, and
  ``marketingOptOut`` can be set but is never cleared: an import never re-subscribes someone
  who opted out.
- A row without an email creates a contact without one (a contact nobody can mail).
- A row with an invalid value is reported in ``errors`` (the first MAX_REPORTED_ERRORS) and
  counted in ``skipped``; entirely blank rows are ignored.
- A problem with the file itself (header, encoding, CSV syntax) raises ValidationFailed.
  Chunks already written are then part of the caller's transaction: the caller rolls back
  (the request and the CLI do), so nothing changes.
- With ``commit`` (the request and the CLI pass one), each chunk is its own transaction, so
  that on SQLite other writers (another org's login) get their turn between chunks. The
  whole file is then read once first, without writing, so that a problem with the file
  itself still changes nothing; only a failure of the database or the process halfway
  leaves the chunks committed before it (whole rows; importing the file again updates them).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.orm import Session

from herald.crm import fields
from herald.crm.repository import ContactRepository, StatusRepository
from herald.db import begin_write, utcnow
from herald.errors import ValidationFailed

CHUNK_SIZE = 1000
MAX_REPORTED_ERRORS = 1000
MAX_LINE_LENGTH = 1 << 20

# Normalised header name -> (attribute, JSON field name).
COLUMNS = {
    "email": ("email", "email"),
    "firstname": ("first_name", "firstName"),
    "lastname": ("last_name", "lastName"),
    "companyname": ("company_name", "companyName"),
    "status": ("status", "status"),
    "marketingoptout": ("marketing_opt_out", "marketingOptOut"),
}
# Set by Herald from bounces and complaints, never by an import: named in the refusal.
_NOT_IMPORTED = {
    "emailstatus": "emailStatus",
    "emailstatusreason": "emailStatusReason",
    "emailstatusat": "emailStatusAt",
}
_TEXT_FIELDS = {"first_name": "firstName", "last_name": "lastName", "company_name": "companyName"}
_HEADER_NOISE = re.compile(r"[\s_\-]")
_SHOWN_UNKNOWN = 10  # a header of 100,000 unknown names gets a short message, not a megabyte

Progress = Callable[[int], None]


@dataclass
class LineError:
    line: int
    message: str


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)

    def reject(self, line: int, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": [{"line": e.line, "message": e.message} for e in self.errors],
        }


@dataclass(slots=True)
class _Row:
    """A valid row. None means blank: the default on create, the stored value on update."""

    email: str | None
    key: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None
    status: str | None
    opt_out: bool

    def absorb(self, later: _Row) -> None:
        """A later row of the file for the same email: its non-blank values win."""
        self.first_name = later.first_name or self.first_name
        self.last_name = later.last_name or self.last_name
        self.company_name = later.company_name or self.company_name
        self.status = later.status or self.status
        self.opt_out = self.opt_out or later.opt_out


def import_contacts(
    source: IO[bytes] | IO[str],
    session: Session,
    org_id: uuid.UUID,
    progress: Progress | None = None,
    commit: Callable[[], None] | None = None,
) -> ImportResult:
    """Import a CSV file of contacts into the org; see the module docstring for the rules.

    ``source`` is a binary file (decoded as UTF-8) or a text file opened with ``newline=""``;
    with ``commit`` it must be seekable. ``progress`` is called after each chunk with the
    number of bytes read so far (characters, for a text file). ``commit`` is called after
    each chunk is written: the caller commits its session there.
    """
    if commit is not None:
        _check_file(source)
        source.seek(0)
    lines = _Lines(source)
    result = ImportResult()
    writer = _ChunkWriter(session, org_id, result)
    if commit is not None:
        commit()  # the statuses read: no transaction stays open while the rows are parsed
    chunk: list[_Row] = []
    for line, record in _numbered_records(lines):
        try:
            chunk.append(_parse_row(record, columns=lines.columns, statuses=writer.statuses))
        except ValidationFailed as exc:
            result.reject(line, exc.message)
            continue
        if len(chunk) >= CHUNK_SIZE:
            writer.write(chunk)
            chunk = []
            if commit is not None:
                commit()
            if progress is not None:
                progress(lines.consumed)
    writer.write(chunk)
    if commit is not None:
        commit()
    if progress is not None:
        progress(lines.consumed)
    return result


def _check_file(source: IO[bytes] | IO[str]) -> None:
    """Read the whole file as the import will, writing nothing: ValidationFailed for a
    problem with the file itself."""
    for _record in _numbered_records(_Lines(source)):
        pass


def _numbered_records(lines: _Lines) -> Iterator[tuple[int, list[str]]]:
    """The file's non-blank rows with their line numbers, after its header (whose columns
    are left in ``lines.columns``); ValidationFailed for a problem with the file itself."""
    line = 1
    try:
        records = _records(lines)
        lines.columns = _parse_header(next(records, None))
        for line, record in enumerate(records, start=2):
            if any(cell.strip() for cell in record):
                yield line, record
    except csv.Error as exc:
        raise ValidationFailed(
            f"The file is not valid CSV (line {line + 1}): {exc}.", field="file"
        ) from None


class _Lines:
    """The file's lines as text, counting what was read, refusing absurdly long lines."""

    def __init__(self, source: IO[bytes] | IO[str]) -> None:
        self.consumed = 0  # bytes; characters for a text file
        self.columns: list[str] = []  # the header's, once read
        self._source = source

    def __iter__(self) -> Iterator[str]:
        if isinstance(self._source, io.TextIOBase):
            return self._text_lines(self._source)
        return self._utf8_lines(self._source)  # type: ignore[arg-type]

    def _utf8_lines(self, binary: IO[bytes]) -> Iterator[str]:
        number = 0
        while raw := binary.readline(MAX_LINE_LENGTH):
            number += 1
            self.consumed += len(raw)
            if len(raw) >= MAX_LINE_LENGTH and not raw.endswith(b"\n"):
                raise _too_long()
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationFailed(
                    f"The file is not UTF-8 text (line {number} of the file has the byte "
                    f"0x{raw[exc.start]:02X}). Save it as 'CSV UTF-8' and upload it again.",
                    field="file",
                ) from None

    def _text_lines(self, text: IO[str]) -> Iterator[str]:
        while line := text.readline(MAX_LINE_LENGTH):
            self.consumed += len(line)
            if len(line) >= MAX_LINE_LENGTH and not line.endswith(("\n", "\r")):
                raise _too_long()
            yield line


def _too_long() -> ValidationFailed:
    return ValidationFailed(
        f"The file has a line longer than {MAX_LINE_LENGTH} characters; "
        "it does not look like a CSV file of contacts.",
        field="file",
    )


def _records(source: Iterable[str]) -> Iterator[list[str]]:
    lines = iter(source)
    first = next(lines, None)
    if first is None:
        return iter(())
    first = first.removeprefix("\ufeff")
    delimiter = "," if "," in first else max((",", ";", "\t"), key=first.count)
    return csv.reader(itertools.chain([first], lines), delimiter=delimiter)


def _parse_header(header: list[str] | None) -> list[str]:
    """The attribute of each column, in order."""
    known = ", ".join(json_name for _attr, json_name in COLUMNS.values())
    if header is None or not any(cell.strip() for cell in header):
        problem = "The file is empty" if header is None else "The first line is blank"
        raise ValidationFailed(
            f"{problem}: the first line must be a header naming the columns ({known}).",
            field="file",
        )
    columns: list[str] = []
    unknown: list[str] = []
    for position, name in enumerate(header, start=1):
        normalised = _HEADER_NOISE.sub("", name).lower()
        if normalised in _NOT_IMPORTED:
            raise ValidationFailed(
                f"The column {_NOT_IMPORTED[normalised]!r} cannot be imported: Herald sets it "
                "from bounces and complaints (an ADMIN resets it on the contact). Remove it.",
                field="file",
            )
        entry = COLUMNS.get(normalised)
        if entry is None:
            shown = name.strip()[:60]
            unknown.append(repr(shown) if shown else f"(column {position} has no name)")
            continue
        if entry[0] in columns:
            raise ValidationFailed(f"The header names the column {entry[1]!r} twice.", field="file")
        columns.append(entry[0])
    if unknown:
        shown = ", ".join(unknown[:_SHOWN_UNKNOWN])
        if len(unknown) > _SHOWN_UNKNOWN:
            shown += f" and {len(unknown) - _SHOWN_UNKNOWN} more"
        raise ValidationFailed(
            f"Unknown column(s) in the header (line 1): {shown}. "
            f"The first line must be a header with these columns: {known}.",
            field="file",
        )
    return columns


def _parse_row(record: list[str], columns: list[str], statuses: list[str]) -> _Row:
    if len(record) > len(columns) and any(cell.strip() for cell in record[len(columns) :]):
        raise ValidationFailed(
            f"The row has {len(record)} fields but the header has {len(columns)}."
        )
    cells = dict(zip(columns, record, strict=False))
    email = fields.clean_email(cells.get("email"))
    texts = {
        attr: fields.clean_text(cells.get(attr), json_name) or None
        for attr, json_name in _TEXT_FIELDS.items()
    }
    status_cell = cells.get("status", "").strip()
    return _Row(
        email=email,
        key=fields.email_key(email),
        first_name=texts["first_name"],
        last_name=texts["last_name"],
        company_name=texts["company_name"],
        status=fields.clean_status(status_cell, statuses) if status_cell else None,
        opt_out=fields.parse_opt_out(cells.get("marketing_opt_out", "")),
    )


class _ChunkWriter:
    """Writes valid rows a chunk at a time: one upsert per chunk (two when only some rows
    name a status)."""

    def __init__(self, session: Session, org_id: uuid.UUID, result: ImportResult) -> None:
        self.repo = ContactRepository(session, org_id)
        self.statuses = StatusRepository(session, org_id).names()
        self.default_status = fields.default_status(self.statuses)
        self.result = result

    def write(self, rows: list[_Row]) -> None:
        begin_write(self.repo.session)
        by_key: dict[str, _Row] = {}
        unique: list[_Row] = []
        for row in rows:
            if row.key is None:
                unique.append(row)
            elif row.key in by_key:
                by_key[row.key].absorb(row)
                self.result.updated += 1
            else:
                by_key[row.key] = row
                unique.append(row)
        for with_status in (True, False):
            values = [self._values(r) for r in unique if (r.status is not None) is with_status]
            written = self.repo.upsert_many(values, set_status=with_status)
            created = sum(1 for v in values if v["id"] in written)
            self.result.created += created
            self.result.updated += len(values) - created

    def _values(self, row: _Row) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": uuid.uuid4(),
            "email": row.email,
            "email_key": row.key,
            "first_name": row.first_name or "",
            "last_name": row.last_name or "",
            "company_name": row.company_name or "",
            "status": row.status or self.default_status,
            "marketing_opt_out": row.opt_out,
            "created_at": now,
            "updated_at": now,
        }
