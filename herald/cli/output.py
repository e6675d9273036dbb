"""How CLI commands print: plain text for people, one JSON object with --json."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from herald.errors import HeraldError, ValidationFailed
from herald.settings import DEV_SECRET_KEY, Settings, get_settings

if TYPE_CHECKING:
    from herald.runtime import Runtime

JSON_OPTION = typer.Option(False, "--json", help="Print one machine-readable JSON object.")
E = TypeVar("E", bound=StrEnum)


def parse_status(enum: type[E], value: str | None, noun: str) -> E | None:
    """A ``--status`` option's value as one of ``enum``'s members (any case); None if unset."""
    if value is None:
        return None
    try:
        return enum(value.strip().upper())
    except ValueError:
        known = ", ".join(member.value for member in enum)
        raise ValidationFailed(
            f"Unknown {noun} status {value!r}: use one of {known}.", field="status"
        ) from None


def emit(data: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, default=str) if as_json else text)


def fail(message: str, as_json: bool = False, code: str = "error") -> None:
    if as_json:
        typer.echo(json.dumps({"error": {"code": code, "message": message, "details": None}}))
    else:
        typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def operator_runtime(as_json: bool = False) -> Iterator[Runtime]:
    """The configured database, for commands that open several short sessions (with a prompt,
    a wait or a stream between them); a HeraldError prints and exits 1."""
    from herald.runtime import Runtime  # imported when used: it brings in FastAPI

    runtime = Runtime.from_settings(get_settings())
    try:
        yield runtime
    except HeraldError as exc:
        fail(exc.message, as_json, exc.code)
    finally:
        runtime.engine.dispose()


@contextmanager
def ctrl_c_flag() -> Iterator[threading.Event]:
    """Ctrl-C sets the flag, for a loop to check where it waits. A KeyboardInterrupt can land
    anywhere, e.g. in a garbage-collection callback, which only prints "Exception ignored"
    and carries on: a watch loop would then never stop."""
    pressed = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def cli_session(as_json: bool = False) -> Iterator[Any]:
    """A committed unit of work on the configured database; errors print and exit 1."""
    from herald.db import unit_of_work

    with operator_runtime(as_json) as runtime, unit_of_work(runtime.sessions) as session:
        yield session


def require_secret_key(settings: Settings) -> None:
    """Refuse to run a server or worker on the published development key, or a short one."""
    problem = settings.secret_key_problem()
    if problem:
        typer.echo(f"Error: {problem}", err=True)
        raise typer.Exit(2)
    if settings.secret_key == DEV_SECRET_KEY and settings.env != "dev":
        typer.echo(
            "Error: HERALD_SECRET_KEY is not set. Set it to a long random value "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
            "or HERALD_ENV=dev for a local trial.",
            err=True,
        )
        raise typer.Exit(2)
