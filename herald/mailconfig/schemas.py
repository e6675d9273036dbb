"""Email configuration bodies: what Settings → Email configuration reads and writes."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
from typing import Annotated, Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from herald.mail.sendref import bounce_address_problem
from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS
from herald.mailconfig.bounceaddress import DEFAULT_SOFT_BOUNCE_LIMIT
from herald.schemas import ApiModel

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = get_args(Security)

DEFAULT_PORT = 587
DEFAULT_SECURITY: Security = "starttls"
MAX_PER_SECOND = 100_000
MAX_PER_HOUR = 100_000_000
MAX_CONNECTIONS = 100
MAX_SOFT_BOUNCE_LIMIT = 100

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


def _bounce_address(value: str | None) -> str | None:
    """Blank: none (messages go out with the From address as their return path)."""
    if value is None or not value.strip():
        return None
    address = normalise_address(value).lower()
    if problem := bounce_address_problem(address):
        raise PydanticCustomError("bounce_address", problem)
    return address


Host = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(_host)]
HeaderText = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(_stripped)]
Address = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(normalise_address)]
BounceAddress = Annotated[
    str | None, BeforeValidator(_no_line_breaks), AfterValidator(_bounce_address)
]


MailboxSecurity = Literal["tls", "starttls"]
MAILBOX_SECURITY_MODES: tuple[MailboxSecurity, ...] = get_args(MailboxSecurity)
MAILBOX_PORTS: dict[str, int] = {"tls": 993, "starttls": 143}
DEFAULT_MAILBOX_FOLDER = "INBOX"


def _folder(value: str) -> str:
    value = value.strip()
    if not value:
        return DEFAULT_MAILBOX_FOLDER
    if value.lower().startswith("herald/processed"):
        raise PydanticCustomError(
            "folder_processed", "must not be Herald/Processed, where Herald moves what it read"
        )
    return value


Folder = Annotated[str, BeforeValidator(_no_line_breaks), AfterValidator(_folder)]


class BounceMailboxIn(ApiModel):
    """The IMAP mailbox bounces land in. ``password`` as for SMTP: omitted or null keeps the
    stored one while host, port, username and security stay the same, "" clears it."""

    host: Host = Field(max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535, strict=True)
    username: HeaderText = Field(max_length=255)
    password: str | None = Field(default=None, max_length=1024)
    security: MailboxSecurity = "tls"
    folder: Folder = Field(default=DEFAULT_MAILBOX_FOLDER, max_length=255)

    @property
    def port_or_default(self) -> int:
        return self.port or MAILBOX_PORTS[self.security]


class BounceMailboxOut(ApiModel):
    host: str
    port: int
    username: str
    security: MailboxSecurity
    folder: str
    password_set: bool
    polled_at: dt.datetime | None = Field(description="When the last poll ended, or null.")
    poll_error: str | None = Field(description="Why the last poll failed, or null.")
    processed_last: int = Field(description="Messages the last poll recognised and moved.")


class WebhookUrls(ApiModel):
    """Ready to paste into each mail service; they stop working when the key is regenerated."""

    ses: str
    sendgrid: str
    mailgun: str
    postmark: str


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as its settings page shows it (base64 of the DER public
    key), or in PEM; ValueError unless it is an ECDSA P-256 public key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error):
        raise ValueError("not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def _sendgrid_key(value: str) -> str:
    value = "".join(value.split()) if not value.strip().startswith("-----") else value.strip()
    if value:
        try:
            sendgrid_public_key(value)
        except ValueError:
            raise PydanticCustomError(
                "sendgrid_key_invalid",
                "must be the verification key SendGrid shows for its signed event webhook "
                "(an ECDSA public key, base64)",
            ) from None
    return value


SendgridKey = Annotated[str, AfterValidator(_sendgrid_key)]


class EmailConfigIn(ApiModel):
    """PUT body. ``password``: omitted or null keeps the stored one while the destination
    (host, port, username, security) stays the same, "" clears it.

    The bounce settings of issue #15 may be left out, which keeps them: ``bounceMailbox``
    (null removes the mailbox), ``sendgridVerificationKey`` ("" clears it) and the
    write-only ``mailgunSigningKey`` ("" clears it)."""

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
    # Bounces and complaints (herald.bounces): see CONTRACT.md "Bounces and complaints"
    bounce_address: BounceAddress = Field(default=None, max_length=320)
    soft_bounce_limit: int = Field(
        default=DEFAULT_SOFT_BOUNCE_LIMIT, ge=1, le=MAX_SOFT_BOUNCE_LIMIT, strict=True
    )

    bounce_mailbox: BounceMailboxIn | None = None
    sendgrid_verification_key: SendgridKey | None = Field(default=None, max_length=4096)
    mailgun_signing_key: str | None = Field(default=None, max_length=1024)


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
    bounce_address: str | None
    soft_bounce_limit: int

    bounce_mailbox: BounceMailboxOut | None
    webhook_key: str | None = Field(description="Read-only; regenerate it to retire the URLs.")
    webhook_urls: WebhookUrls | None
    sendgrid_verification_key: str
    mailgun_signing_key_set: bool
    postmark_username: str | None = Field(description="Herald's basic-auth user for Postmark.")
    postmark_password: str | None = Field(description="Herald's basic-auth password for Postmark.")


class TestMessageIn(ApiModel):
    to: Address = Field(max_length=320)


class TestMessageOut(ApiModel):
    ok: bool
    code: int
    message: str
