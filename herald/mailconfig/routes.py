"""Settings → Email configuration API (ADMIN only): read, save, send a test message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from herald.audit import service as audit
from herald.auth.deps import ADMIN_ONLY, Principal
from herald.mailconfig import inbound, service, testmail
from herald.mailconfig.account import DEFAULT_MAX_CONNECTIONS, MailAccount
from herald.mailconfig.bounceaddress import DEFAULT_SOFT_BOUNCE_LIMIT
from herald.mailconfig.models import EmailConfig
from herald.mailconfig.schemas import (
    DEFAULT_PORT,
    DEFAULT_SECURITY,
    EmailConfigIn,
    EmailConfigOut,
    TestMessageIn,
    TestMessageOut,
)
from herald.openapi import BODY, error_responses
from herald.runtime import get_session, get_settings_dep
from herald.settings import Settings

router = APIRouter(
    tags=["settings"],
    responses=error_responses(401, 403, notes={403: "Email configuration is ADMIN only."}),
)

# Function scope, as in herald.auth.deps: one session per request, committed before the response.
Db = Annotated[Session, Depends(get_session, scope="function")]
AdminUser = Annotated[Principal, Depends(ADMIN_ONLY)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]


def _view(session: Session, settings: Settings, row: EmailConfig | None) -> EmailConfigOut:
    if row is None:
        return EmailConfigOut(
            configured=False,
            host="",
            port=DEFAULT_PORT,
            username="",
            security=DEFAULT_SECURITY,
            default_from_name="",
            default_from_email="",
            password_set=False,
            max_per_second=None,
            max_per_hour=None,
            max_connections=DEFAULT_MAX_CONNECTIONS,
            updated_at=None,
            bounce_address=None,
            soft_bounce_limit=DEFAULT_SOFT_BOUNCE_LIMIT,
            **inbound.unconfigured_view(),
        )
    return EmailConfigOut(
        configured=True,
        host=row.host,
        port=row.port,
        username=row.username,
        security=service.parse_security(row.security),
        default_from_name=row.default_from_name,
        default_from_email=row.default_from_email,
        password_set=row.password_sealed is not None,
        max_per_second=row.max_per_second,
        max_per_hour=row.max_per_hour,
        max_connections=row.max_connections,
        updated_at=row.updated_at,
        bounce_address=row.bounce_address,
        soft_bounce_limit=row.soft_bounce_limit,
        **inbound.view(session, settings, row),
    )


@router.get("/api/settings/email", response_model=EmailConfigOut, response_model_by_alias=True)
def get_email_config(principal: AdminUser, session: Db, settings: AppSettings) -> EmailConfigOut:
    """The organisation's SMTP settings (`configured: false` until saved); the password is
    never shown, only whether one is set. Also the relay's limits, the bounce mailbox (with
    its last poll) and the mail services' webhook URLs and keys (the Mailgun signing key only
    as set or not)."""
    return _view(session, settings, service.get_config(session, principal.org_id))


@router.put(
    "/api/settings/email",
    response_model=EmailConfigOut,
    response_model_by_alias=True,
    responses={
        **BODY,
        **error_responses(
            409,
            422,
            notes={
                422: "Bad input naming the field, or a host that is or resolves to a "
                "non-public address (`smtp_host_not_allowed`).",
                409: "Another organisation uses this bounceAddress (`bounce_address_taken`).",
            },
        ),
    },
)
def put_email_config(
    body: EmailConfigIn,
    principal: AdminUser,
    session: Db,
    settings: AppSettings,
) -> EmailConfigOut:
    """Saves the SMTP settings. `password` is write-only: left out, the stored one stays
    while host, port, username and security stay the same (a change clears it); an empty string
    clears it. A host that is or resolves to a non-public address is a 422
    `smtp_host_not_allowed`, unless HERALD_SMTP_ALLOWED_NETWORKS allows it.
    `maxPerSecond` and `maxPerHour` (null: no limit) and `maxConnections` (1-100, default
    10) are the relay's limits, held by all of Herald's workers together (left out: kept).
    `bounceAddress` (null or blank: none) is where bounces come back: each campaign message
    is sent with the return path `local+TAG@domain`, so its local part may have at most 37
    characters and no "+"; `softBounceLimit` (1-100, default 3) soft-bouncing campaigns in a
    row suppress an address. The bounce mailbox and the mail services' keys: see
    docs/api.md (left out, they stay as they are; `mailgunSigningKey` and
    `bounceMailbox.password` are write-only)."""
    row = service.save_config(
        session, settings, principal.org_id, body, actor=audit.actor(principal)
    )
    return _view(session, settings, row)


@router.post(
    "/api/settings/email/webhook-key",
    response_model=EmailConfigOut,
    response_model_by_alias=True,
    responses=error_responses(409, notes={409: "Email is not configured yet."}),
)
def regenerate_webhook_key(
    principal: AdminUser, session: Db, settings: AppSettings
) -> EmailConfigOut:
    """A new `webhookKey` (and Postmark password): the old webhook URLs stop working at once,
    so paste the new ones into each mail service."""
    row = inbound.regenerate_webhook_key(
        session, settings, principal.org_id, actor=audit.actor(principal)
    )
    return _view(session, settings, row)


def _load_account(session: Session, settings: Settings, principal: Principal) -> MailAccount:
    account = service.load_mail_account(session, settings, principal.org_id)
    testmail.take_test_allowance(settings, principal.org_id)
    # Nothing to write: end the transaction now, so that it (and on SQLite the write lock a
    # POST starts with) is not held while a slow SMTP server takes its time.
    session.rollback()
    return account


@router.post(
    "/api/settings/email/test",
    response_model=TestMessageOut,
    response_model_by_alias=True,
    responses={
        **BODY,
        **error_responses(
            409,
            422,
            429,
            502,
            notes={
                409: "Email is not configured yet (`smtp_not_configured`), or the stored "
                "password cannot be decrypted (`smtp_password_unreadable`).",
                422: "Bad input, or the host now resolves to an address the egress rule "
                "refuses (`smtp_host_not_allowed`).",
                429: "More test messages than the org may send per minute (`rate_limited`).",
            },
        ),
    },
)
async def send_test_message(
    body: TestMessageIn,
    principal: AdminUser,
    session: Db,
    settings: AppSettings,
) -> TestMessageOut:
    """Sends a test message to `to` with the saved settings and reports the SMTP server's
    answer; a refusal or an unreachable server is a 502 with the server's answer."""
    account = await run_in_threadpool(_load_account, session, settings, principal)
    reply = await testmail.send_test_message(account, body.to)
    return TestMessageOut(ok=True, code=reply.code, message=reply.text)
