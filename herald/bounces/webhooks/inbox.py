"""Webhook calls checked and stored in batches (herald.groupcommit): one transaction finds
the orgs of a batch's keys, checks each call with its org's key, and stores the calls that
carry events. A 200 means the call is in the database, so a service never has to send it
again and a burst loses none; a worker ingests it afterwards (herald.bounces.webhooks.drain)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from herald.bounces.models import Source
from herald.bounces.webhooks import mailgun, postmark, sendgrid
from herald.bounces.webhooks import repository as webhook_calls
from herald.bounces.webhooks.events import Reading, Unauthenticated
from herald.db import unit_of_work, utcnow
from herald.groupcommit import GroupCommit
from herald.mailconfig.inbound import WebhookAccount, webhook_accounts
from herald.runtime import Runtime

BATCH = 1000


@dataclass(frozen=True)
class Call:
    """A call as received. ``signature`` and ``timestamp`` are SendGrid's headers, or
    Postmark's Authorization in ``signature``. ``verified``: the events of a call already
    proven by its own signature (SNS), which needs only its key to be an org's."""

    provider: str
    key: str
    body: bytes
    signature: str = ""
    timestamp: str = ""
    verified: Reading | None = None


@dataclass(frozen=True)
class Answer:
    """Stored with ``recorded`` events (0: nothing to store), or refused and why."""

    recorded: int = 0
    refused: str | None = None


@dataclass(frozen=True)
class _Checked:
    call: Call
    account: WebhookAccount
    events: int
    token: str | None = None
    signed_at: dt.datetime | None = None


class WebhookInbox:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime.durable()  # a 200 promises the call is stored
        self._group: GroupCommit[Call, Answer] = GroupCommit(self._write, BATCH)

    async def submit(self, call: Call) -> Answer:
        return await self._group.submit(call)

    async def close(self) -> None:
        await self._group.close()

    def _write(self, calls: list[Call]) -> list[Answer]:
        with unit_of_work(self.runtime.sessions) as session:
            accounts = webhook_accounts(session, self.runtime.settings, {c.key for c in calls})
            answers: list[Answer | _Checked] = [
                _check(call, accounts.get(call.key)) for call in calls
            ]
            keep = [a for a in answers if isinstance(a, _Checked) and a.events]
            fresh = set(_unused_tokens(session, keep))
            rows = [
                {"org_id": c.account.org_id, "source": c.call.provider, "body": c.call.body}
                for c in keep
                if id(c) in fresh
            ]
            now = utcnow()
            webhook_calls.store(session, [{**row, "received_at": now} for row in rows])
        return [_answer(a, fresh) for a in answers]


def _check(call: Call, account: WebhookAccount | None) -> Answer | _Checked:
    """The call proven with its org's key (and its events counted), or refused."""
    try:
        if account is None:
            raise Unauthenticated("unknown webhook key")
        if call.verified is not None:
            return _Checked(call, account, len(call.verified.events))
        if call.provider == Source.SENDGRID:
            sendgrid.verify(account.sendgrid_key, call.signature, call.timestamp, call.body)
            return _Checked(call, account, len(sendgrid.read(call.body).events))
        if call.provider == Source.POSTMARK:
            postmark.verify(account.postmark_password, call.signature)
            return _Checked(call, account, len(postmark.read(call.body).events))
        signed = mailgun.verify(account.mailgun_signing_key, call.body)
        events = len(mailgun.read(signed.event).events)
        return _Checked(call, account, events, signed.token, signed.signed_at)
    except Unauthenticated as exc:
        return Answer(refused=str(exc))


def _answer(result: Answer | _Checked, fresh: set[int]) -> Answer:
    if isinstance(result, Answer):
        return result
    if result.events and id(result) not in fresh:
        return Answer(refused="Mailgun token used before")
    return Answer(recorded=result.events)


def _unused_tokens(session: Session, checked: list[_Checked]) -> list[int]:
    """The ids of the calls to store: each Mailgun token recorded as used, a call whose
    token was used before (by an earlier call, or earlier in this batch) left out."""
    seen = webhook_calls.used_tokens(session, [c.token for c in checked if c.token])
    kept: list[int] = []
    new: list[dict[str, object]] = []
    for c in checked:
        if c.token is None:
            kept.append(id(c))
        elif c.token not in seen:
            seen.add(c.token)
            kept.append(id(c))
            new.append({"token": c.token, "signed_at": c.signed_at or utcnow()})
    if new:
        try:
            with session.begin_nested():
                webhook_calls.record_tokens(session, new)
        except IntegrityError:  # another process took one of them just now: one at a time
            return _one_by_one(session, checked)
    return kept


def _one_by_one(session: Session, checked: list[_Checked]) -> list[int]:
    kept: list[int] = []
    for c in checked:
        if c.token is not None:
            try:
                with session.begin_nested():
                    webhook_calls.record_token(session, c.token, c.signed_at or utcnow())
            except IntegrityError:
                continue
        kept.append(id(c))
    return kept
