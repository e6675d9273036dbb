"""``POST /webhooks/{provider}/{webhookKey}``: the mail services' calls. The key names the
org (unknown: 401); each call is authenticated as its service documents (else 401 and
nothing recorded); its bounce and complaint events are stored before the 200 and ingested
by a worker; other events are answered 200 and dropped."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from herald.bounces.models import Source
from herald.bounces.webhooks import mailgun, postmark, sendgrid, ses, sns
from herald.bounces.webhooks.events import Reading, Unauthenticated
from herald.bounces.webhooks.inbox import Delivery, WebhookInbox
from herald.db import unit_of_work
from herald.error_handlers import error_response
from herald.log import get_logger
from herald.mailconfig.inbound import PROVIDERS, WebhookAccount, webhook_account
from herald.runtime import Runtime, get_runtime

log = get_logger("herald.webhooks")

# Not in the API description: like the pixel and the unsubscribe links, these are called by
# mail services, not API clients (docs/api.md and docs/operations.md describe them).
router = APIRouter(include_in_schema=False)

_REFUSED = "The call is not authenticated for this webhook URL."


def _lookup(runtime: Runtime, key: str) -> WebhookAccount | None:
    with unit_of_work(runtime.sessions, write=False) as session:
        return webhook_account(session, runtime.settings, key)


@router.post("/webhooks/{provider}/{webhook_key}")
async def receive(provider: str, webhook_key: str, request: Request) -> JSONResponse:
    """A mail service's event call (`ses` through SNS, `sendgrid`, `mailgun`, `postmark`).
    See docs/operations.md for what to enable in each service."""
    if provider not in PROVIDERS:
        return error_response(404, "not_found", "No such webhook provider.")
    runtime = get_runtime(request)
    account = await run_in_threadpool(_lookup, runtime, webhook_key)
    try:
        if account is None:
            raise Unauthenticated("unknown webhook key")
        body = await request.body()
        reading, delivery = await _authenticate(provider, account, request, body)
    except Unauthenticated as exc:
        return _refused(provider, str(exc))
    except sns.SubscriptionFailed:
        return error_response(
            502, "subscription_not_confirmed", "SNS did not accept the confirmation."
        )
    if not reading.events or delivery is None:
        return JSONResponse({"recorded": 0})
    inbox: WebhookInbox = request.app.state.webhook_inbox
    if not await inbox.store(delivery):
        return _refused(provider, "Mailgun token used before")
    log.debug("webhooks.stored", provider=provider, events=len(reading.events))
    return JSONResponse({"recorded": len(reading.events)})


async def _authenticate(
    provider: str, account: WebhookAccount, request: Request, body: bytes
) -> tuple[Reading, Delivery | None]:
    """The call's events and what to store; Unauthenticated when it is not proven."""
    headers = request.headers
    store: dict[str, Any] = {"org_id": account.org_id, "source": provider, "body": body}
    if provider == Source.SENDGRID:
        signature = headers.get(sendgrid.SIGNATURE_HEADER, "")
        timestamp = headers.get(sendgrid.TIMESTAMP_HEADER, "")
        sendgrid.verify(account.sendgrid_key, signature, timestamp, body)
        return sendgrid.read(body), Delivery(**store)
    if provider == Source.MAILGUN:
        signed = mailgun.verify(account.mailgun_signing_key, body)
        store.update(mailgun_token=signed.token, signed_at=signed.signed_at)
        return mailgun.read(signed.event), Delivery(**store)
    if provider == Source.POSTMARK:
        postmark.verify(account.postmark_password, headers.get("authorization", ""))
        return postmark.read(body), Delivery(**store)
    verifier: sns.SnsVerifier = request.app.state.sns_verifier
    message = await verifier.verify(sns.parse(body))
    if message.type == sns.SUBSCRIBE:
        await verifier.confirm_subscription(message)
        return Reading(), None
    if message.type == sns.UNSUBSCRIBE:
        log.info("webhooks.sns_unsubscribed", topic_arn=message.topic_arn)
        return Reading(), None
    return ses.read(message.message), Delivery(**store)


def _refused(provider: str, reason: str) -> JSONResponse:
    log.warning("webhooks.refused", provider=provider, reason=reason)
    headers = {"WWW-Authenticate": 'Basic realm="Herald"'} if provider == Source.POSTMARK else None
    return error_response(401, "webhook_unauthenticated", _REFUSED, headers=headers)
