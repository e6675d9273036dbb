"""``POST /webhooks/{provider}/{webhookKey}``: the mail services' calls. The key names the
org (unknown: 401); each call is authenticated as its service documents (else 401 and
nothing recorded); its bounce and complaint events are stored before the 200 and ingested
by a worker; other events are answered 200 and dropped."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from herald.bounces.models import Source
from herald.bounces.webhooks import postmark, sendgrid, ses, sns
from herald.bounces.webhooks.events import Reading, Unauthenticated
from herald.bounces.webhooks.inbox import Answer, Call, WebhookInbox
from herald.bounces.webhooks.keys import WebhookKeys
from herald.error_handlers import error_response
from herald.log import get_logger
from herald.mailconfig.inbound import PROVIDERS

log = get_logger("herald.webhooks")

# Not in the API description: like the pixel and the unsubscribe links, these are called by
# mail services, not API clients (docs/api.md and docs/operations.md describe them).
router = APIRouter(include_in_schema=False)

_REFUSED = "The call is not authenticated for this webhook URL."


async def receive(request: Request) -> JSONResponse:
    """A mail service's event call (`ses` through SNS, `sendgrid`, `mailgun`, `postmark`).
    See docs/operations.md for what to enable in each service. The body is read only once
    the key names an org (and, for Postmark, the credentials match): anyone can call."""
    provider = request.path_params["provider"]
    webhook_key = request.path_params["webhook_key"]
    if provider not in PROVIDERS:
        return error_response(404, "not_found", "No such webhook provider.")
    keys: WebhookKeys = request.app.state.webhook_keys
    account = await keys.account(webhook_key)
    headers = request.headers
    try:
        if account is None:
            raise Unauthenticated("unknown webhook key")
        if provider == Source.POSTMARK:
            postmark.verify(account.postmark_password, headers.get("authorization", ""))
    except Unauthenticated as exc:
        return _refused(provider, str(exc))
    body = await request.body()
    inbox: WebhookInbox = request.app.state.webhook_inbox
    try:
        if provider == Source.SES:
            return await _sns(request, inbox, webhook_key, body)
        if provider == Source.SENDGRID:
            signature = headers.get(sendgrid.SIGNATURE_HEADER, "")
            call = Call(
                provider, webhook_key, body, signature, headers.get(sendgrid.TIMESTAMP_HEADER, "")
            )
        elif provider == Source.POSTMARK:
            call = Call(provider, webhook_key, body, headers.get("authorization", ""))
        else:
            call = Call(provider, webhook_key, body)
        return _answered(provider, await inbox.submit(call))
    except Unauthenticated as exc:
        return _refused(provider, str(exc))


# A plain (Starlette) route, as the pixel's: inside the app's router, behind every
# middleware and error handler, without FastAPI's dependency solving (a burst of calls).
router.add_route("/webhooks/{provider}/{webhook_key}", receive, methods=["POST"])


async def _sns(request: Request, inbox: WebhookInbox, key: str, body: bytes) -> JSONResponse:
    """SNS signs its messages itself: checked first (no key involved), then the key."""
    verifier: sns.SnsVerifier = request.app.state.sns_verifier
    message = await verifier.verify(sns.parse(body))
    if message.type != sns.NOTIFICATION:
        # (un)subscription: nothing stored, only whether the URL is an org's
        answer = await inbox.submit(Call(Source.SES, key, body, verified=Reading()))
        if answer.refused is not None:
            return _refused(Source.SES, answer.refused)
        if message.type == sns.SUBSCRIBE:
            try:
                await verifier.confirm_subscription(message)
            except sns.SubscriptionFailed:
                return error_response(
                    502, "subscription_not_confirmed", "SNS did not accept the confirmation."
                )
        else:
            log.info("webhooks.sns_unsubscribed", topic_arn=message.topic_arn)
        return JSONResponse({"recorded": 0})
    answer = await inbox.submit(Call(Source.SES, key, body, verified=ses.read(message.message)))
    return _answered(Source.SES, answer)


def _answered(provider: str, answer: Answer) -> JSONResponse:
    if answer.refused is not None:
        return _refused(provider, answer.refused)
    return JSONResponse({"recorded": answer.recorded})


def _refused(provider: str, reason: str) -> JSONResponse:
    log.warning("webhooks.refused", provider=provider, reason=reason)
    headers = {"WWW-Authenticate": 'Basic realm="Herald"'} if provider == Source.POSTMARK else None
    return error_response(401, "webhook_unauthenticated", _REFUSED, headers=headers)
