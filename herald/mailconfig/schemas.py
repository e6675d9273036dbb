"""Email configuration bodies: what Settings → Email configuration reads and writes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Literal, get_args

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS
from herald.schemas import ApiModel

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = get_args(Security)

DEFAULT_PORT = 587
DEFAULT_SECURITY: Security = "starttls"
MAX_PER_SECOND = 100_000
MAX_PER_HOUR = 100_000_000
MAX_CONNECTIONS = 100

_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


def _no_line_breaks(value: object) -> object:
    """Runs before stripping, so a trailing CR/LF is refused rather than trimmed away."""
    if isinstance(value, str) and ("\r" in value or "\n" in value):
        raise PydanticCustomError("line_break", "must not contain a line break (CR or LF)")
    return value


def _host(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("host_required", "the SMTP host is required")
    if any(c.isspace() for c in value):
        raise PydanticCustomError("host_whitespace", "must not contain spaces")
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value.strip("[]")
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise PydanticCustomError(
            "host_invalid", "must be a host name or IP address, like smtp.example.com"
        )
    return value.lower()


def normalise_address(value: str) -> str:
    """A syntactically valid address (no DNS lookup), ASCII so that any SMTP server takes it."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "email_invalid", "is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None
    return checked.ascii_email or checked.normalized


def _stripped(value: str) -> str:
    return value.strip()


Host = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(_host)]
HeaderText = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(_stripped)]
Address = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(normalise_address)]


class EmailConfigIn(ApiModel):
    """PUT body. ``password``: omitted or null keeps the stored one while the destination
    (host, port, username, security) stays the same, "" clears it."""

    host: Host = Field(max_length=255)
    port: int = Field(ge=1, le=65535, strict=True)
    username: HeaderText = Field(default="", max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    security: Security
    default_from_name: HeaderText = Field(default="", max_length=200)
    default_from_email: Address = Field(max_length=320)
    # The relay's limits, for all of Herald's workers together; null: no limit.
    max_per_second: int | None = Field(default=None, ge=1, le=MAX_PER_SECOND, strict=True)
    max_per_hour: int | None = Field(default=None, ge=1, le=MAX_PER_HOUR, strict=True)
    max_connections: int = Field(
        default=DEFAULT_MAX_CONNECTIONS, ge=1, le=MAX_CONNECTIONS, strict=True
    )


class EmailConfigOut(ApiModel):
    configured: bool
    host: str
    port: int
    username: str
    security: Security
    default_from_name: str
    default_from_email: str
    password_set: bool
    max_per_second: int | None
    max_per_hour: int | None
    max_connections: int
    updated_at: dt.datetime | None


class TestMessageIn(ApiModel):
    to: Address = Field(max_length=320)


class TestMessageOut(ApiModel):
    ok: bool
    code: int
    message: str
