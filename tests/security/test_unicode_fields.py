"""Unicode edge cases in every text field of every API write: stored and read back exactly,
or a 422 naming the field; never a 500. The fields come from the request models, so a new
field is covered without editing this test."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from herald.crm.schemas import ContactCreateIn
from herald.mailconfig.schemas import EmailConfigIn
from herald.marketing.schemas import CampaignIn
from herald.orgs.schemas import UserCreateIn
from tests.marketing.factories import campaign_body
from tests.security.hostile import API, fresh_admin

admin = pytest.fixture(fresh_admin)

VALUES = {
    "rtl override": "abc\u202egnp.exe",
    "emoji": "🎉 Party 🚀",
    "combining": "e\u0301\u0302\u0303",
    "zwj family": "👨\u200d👩\u200d👧\u200d👦",
    "flag": "🏳️\u200d🌈",
    "nul": "a\x00b",
    "lone surrogate": "a\ud800b",
    "non-character": "a\uffffb\U0010ffff",
    "bom inside": "a\ufeffb",
    "zalgo": "Z" + "\u0335\u0327\u031b\u0347" * 60,
    "long cluster": "a" + "\u0301" * 150,
}
# Never storable: NUL breaks PostgreSQL text, a lone surrogate is not UTF-8.
MUST_REFUSE = {"nul", "lone surrogate"}


def text_fields(model: type[BaseModel]) -> list[str]:
    """The JSON names of the model's string fields (str, or str | None)."""
    names = []
    for name, info in model.model_fields.items():
        shown = repr(info.annotation)
        if info.annotation is str or ("str" in shown and "Literal" not in shown):
            names.append(info.alias or name)
    return names


def _email_with(value: str) -> str:
    return f"u{uuid.uuid4().hex[:6]}{value}@example.com"


def _value_for(field: str, value: str) -> str:
    return _email_with(value) if "email" in field.lower() else f"x{value}y"


Maker = Callable[[httpx.Client, dict[str, str], str, str], tuple[httpx.Response, Any]]


def make_campaign(client, headers, field, value):  # type: ignore[no-untyped-def]
    body = campaign_body(**{field: value})
    response = client.post(f"{API}/campaigns", content=json.dumps(body), headers=headers)
    return response, lambda r: client.get(f"{API}/campaigns/{r['id']}", headers=headers).json()


def make_contact(client, headers, field, value):  # type: ignore[no-untyped-def]
    body = {"email": _email_with(""), field: value}
    response = client.post("/api/crm/contacts", content=json.dumps(body), headers=headers)
    return response, lambda r: client.get(f"/api/crm/contacts/{r['id']}", headers=headers).json()


def put_email_config(client, headers, field, value):  # type: ignore[no-untyped-def]
    body = {"host": "smtp.example.com", "port": 587, "security": "starttls",
            "defaultFromEmail": "n@example.com", field: value}  # fmt: skip
    response = client.put("/api/settings/email", content=json.dumps(body), headers=headers)
    return response, lambda _r: client.get("/api/settings/email", headers=headers).json()


def make_user(client, headers, field, value):  # type: ignore[no-untyped-def]
    body = {"email": _email_with(""), "password": "p" * 12, "role": "USER", field: value}
    response = client.post("/api/settings/users", content=json.dumps(body), headers=headers)

    def read(r: dict[str, Any]) -> dict[str, Any]:
        users = client.get("/api/settings/users", headers=headers).json()["items"]
        return next(u for u in users if u["id"] == r["id"])

    return response, read


WRITES: dict[str, tuple[type[BaseModel], Maker]] = {
    "campaign": (CampaignIn, make_campaign),
    "contact": (ContactCreateIn, make_contact),
    "email config": (EmailConfigIn, put_email_config),
    "user": (UserCreateIn, make_user),
}
WRITE_ONLY = {"password", "mailgunSigningKey"}
ADDRESSES = {"email", "fromEmail", "defaultFromEmail"}


def test_the_field_lists_come_from_the_models():
    fields = {write: text_fields(model) for write, (model, _) in WRITES.items()}
    assert {"name", "fromName", "fromEmail", "subject", "htmlBody", "textBody"} <= set(
        fields["campaign"]
    )
    assert {"email", "firstName", "lastName", "companyName", "status"} <= set(fields["contact"])
    assert {"host", "username", "password", "defaultFromName", "defaultFromEmail"} <= set(
        fields["email config"]
    )
    assert {"email", "password"} <= set(fields["user"])


@pytest.mark.parametrize("write", sorted(WRITES))
def test_unicode_is_stored_exactly_or_refused_naming_the_field(client, admin, write):
    model, maker = WRITES[write]
    headers = {**admin.headers, "content-type": "application/json"}
    outcomes: dict[str, int] = {}
    for field in text_fields(model):
        for name, raw in VALUES.items():
            value = _value_for(field, raw)
            response, read_back = maker(client, headers, field, value)
            outcomes[f"{field}/{name}"] = response.status_code
            assert response.status_code in (200, 201, 422), (field, name, response.text[:300])
            if response.status_code == 422:
                details = response.json()["error"]["details"]
                assert field in [d["field"] for d in details], (field, name, details)
                continue
            assert name not in MUST_REFUSE, (field, name)
            if field in WRITE_ONLY:
                continue
            stored = read_back(response.json())
            allowed = {value}
            if field in ADDRESSES:  # an address may be kept in Unicode normal form C (RFC 6532)
                allowed.add(unicodedata.normalize("NFC", value))
            assert stored[field] in allowed, (write, field, name)
            assert response.json()[field] == stored[field], (write, field, name)
    assert any(code != 422 for code in outcomes.values()), outcomes  # not all refused
