"""API fuzzing: schemathesis generates requests (valid and invalid) for every operation of
/api/openapi.json, served by the real app over HTTP (so the body limit and the error
handlers are in the path), as the ADMIN of a licensed org with real data. Every answer must
be documented: no 5xx, a declared status code, content type, headers and body schema.

Bounded and repeatable: a fixed seed, derandomized Hypothesis, a fixed number of examples
per operation. Path ids are either generated or the id of a real row (drawn by Hypothesis,
so still repeatable), so the fuzz reaches past the 404; DELETE gets rows of its own.
Nothing is excluded: logout and refresh act on the `refreshToken` cookie, which this
session never sends (requests keeps no cookie jar between cases), so they cannot revoke
the bearer token under test; after "sign out everywhere" and a password change, which end
it, the user's session epoch is set back so the token works again. Login answers 401 and,
after a few tries, 429 (documented).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.core.failures import FailureGroup, as_reported_failure
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from herald.runtime import Runtime
from tests.marketing.engine import add_contacts, configure_smtp, mark_delivered
from tests.orgs.factories import login, make_org, make_user
from tests.security.conftest import smtp_settings
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.slow  # a long file: the parallel run starts it first (conftest)

SEED = 20_240_610
MAX_EXAMPLES = 15  # per operation and phase; CI time is bounded (make test runs it twice)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TEST_MESSAGE = "/api/settings/email/test"


@dataclass
class Fuzzed:
    """The org under test, the real ids path parameters may take, and what ran."""

    headers: dict[str, str]
    org_id: Any
    ids: dict[str, list[str]]
    doomed: dict[str, list[str]]
    """The ids DELETE takes, so that the other operations keep theirs."""
    outcomes: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    """operation label -> how many answers of each status"""
    started: float = field(default_factory=time.monotonic)


_state: dict[str, Fuzzed] = {}


def _created(response: httpx.Response) -> str:
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def fuzzed(live_server, runtime: Runtime, module_smtp: SmtpServer) -> Fuzzed:
    """A licensed org with an ADMIN (the fuzzing session), a MANAGER, contacts, DRAFT
    campaigns, and a SENT campaign with delivered, failed and opened sends."""
    org = make_org(runtime)
    admin = make_user(runtime, org, "ADMIN")
    manager = make_user(runtime, org, "MANAGER")
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        headers = login(c, admin)
        put = c.put("/api/settings/email", headers=headers, json=smtp_settings(module_smtp.port))
        assert put.status_code == 200, put.text
        add_contacts(runtime, org.id, [f"fuzz{i}@example.com" for i in range(3)])
        contact = _created(
            c.post(
                "/api/crm/contacts",
                headers=headers,
                json={"email": "ann@example.com", "firstName": "Ann", "status": "CUSTOMER"},
            )
        )
        body = {"name": "Fuzz", "subject": "Hi {{firstName|there}}", "htmlBody": "<p>Hi</p>"}
        drafts = [
            _created(c.post("/api/marketing/campaigns", headers=headers, json=body))
            for _ in range(6)
        ]
        doomed_contact = _created(
            c.post("/api/crm/contacts", headers=headers, json={"email": "bo@example.com"})
        )
        sent = _created(c.post("/api/marketing/campaigns", headers=headers, json=body))
        launch = c.post(f"/api/marketing/campaigns/{sent}/launch", headers=headers)
        assert launch.status_code == 202, launch.text
        mark_delivered(runtime, uuid.UUID(sent))
        sends = c.get(f"/api/marketing/campaigns/{sent}/sends", headers=headers).json()["items"]
        send_ids = [str(s["id"]) for s in sends]
        _fail_one_send(runtime, int(send_ids[0]))
    fuzz = Fuzzed(
        headers=headers,
        org_id=org.id,
        ids={
            "contact_id": [contact],
            "campaign_id": [*drafts[:4], sent],
            "send_id": send_ids,
            "user_id": [str(manager.id), str(admin.id)],
        },
        doomed={"contact_id": [doomed_contact], "campaign_id": [*drafts[4:], sent]},
    )
    _state["run"] = fuzz
    return fuzz


def _fail_one_send(runtime: Runtime, send_id: int) -> None:
    """One send FAILED (resendable), as a worker leaves a 5xx answer; the others delivered,
    one of them opened."""
    from sqlalchemy import select

    from herald.db import unit_of_work, utcnow
    from herald.marketing.models import Campaign, MarketingSend

    with unit_of_work(runtime.sessions) as session:
        send = session.get(MarketingSend, send_id)
        assert send is not None
        send.status, send.error, send.delivered_at = "FAILED", "550 5.1.1 No such user", None
        campaign = session.get(Campaign, send.campaign_id)
        assert campaign is not None
        campaign.delivered -= 1
        campaign.failed += 1
        opened = session.scalars(
            select(MarketingSend).where(
                MarketingSend.campaign_id == send.campaign_id, MarketingSend.id != send_id
            )
        ).first()
        assert opened is not None
        opened.opened_at = utcnow()
        campaign.opens += 1


@pytest.fixture(scope="module")
def api_schema(live_server, fuzzed: Fuzzed) -> Iterator[Any]:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        }
    )
    loaded = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json", config=config)
    loaded.config.update(base_url=live_server.url, headers=fuzzed.headers)

    @loaded.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        """Half the time, each id is a real one of the org's."""
        if not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        pools = fuzzed.doomed if context.operation.method.upper() == "DELETE" else fuzzed.ids
        choices: dict[str, st.SearchStrategy[Any]] = {}
        for name, value in path_parameters.items():
            real = pools.get(name)
            choices[name] = st.sampled_from([value, *real]) if real else st.just(value)
        return st.fixed_dictionaries(choices)

    yield loaded


def test_api_answers_as_documented(
    api_schema, fuzzed: Fuzzed, runtime: Runtime, module_smtp, subtests
):
    """Each operation in its own subtest, with every phase the pytest plugin runs (the
    schema's examples, the coverage edge cases, then Hypothesis). Driven here rather than by
    ``schemathesis.pytest.from_fixture``, whose runner sets ``Function._nodeid``, which
    pytest 9.2 no longer has."""
    load_all_checks()
    ran = 0
    for result in get_all_tests(
        schema=api_schema, test_func=_fuzz_case, settings=None, given_kwargs=None
    ):
        operation, test = result.ok()
        ran += 1
        with subtests.test(msg=operation.label):
            try:
                test(case_fixtures=(fuzzed, runtime, module_smtp.port))
            except FailureGroup as exc:
                raise as_reported_failure(exc) from None
    assert ran > 0


def _fuzz_case(case: Any, case_fixtures: tuple[Fuzzed, Runtime, int]) -> None:
    fuzzed, runtime, smtp_port = case_fixtures
    if case.path == TEST_MESSAGE:
        # The fuzz saves any host and port in the settings; the test message is sent to
        # the loopback SMTP server, never to whatever host the last PUT named.
        _reset_smtp(runtime, fuzzed, smtp_port)
    response = case.call(timeout=30)
    if case.path in SESSION_ENDING:
        _restore_session(runtime, fuzzed)
    fuzzed.outcomes[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


# These end every session of the caller, the fuzz's own bearer token included.
SESSION_ENDING = ("/api/auth/sessions/revoke", "/api/auth/password")


def _restore_session(runtime: Runtime, fuzzed: Fuzzed) -> None:
    """Make the fuzz's bearer token good again (its tokens carry session epoch 0)."""
    from sqlalchemy import update

    from herald.db import unit_of_work
    from herald.orgs.models import User

    with unit_of_work(runtime.sessions) as session:
        session.execute(update(User).where(User.org_id == fuzzed.org_id).values(session_epoch=0))


def _reset_smtp(runtime: Runtime, fuzzed: Fuzzed, port: int) -> None:
    from sqlalchemy import delete

    from herald.db import unit_of_work
    from herald.mailconfig.models import EmailConfig

    with unit_of_work(runtime.sessions) as session:
        session.execute(delete(EmailConfig).where(EmailConfig.org_id == fuzzed.org_id))
    configure_smtp(runtime, fuzzed.org_id, port)


def test_every_operation_was_fuzzed(client, figures, record_property):
    """Runs after the fuzz (same module, declared after it): every documented operation got
    cases, and every one with an id in its path got past the 404 with a real id."""
    fuzz = _state.get("run")
    assert fuzz is not None, "the fuzz did not run"
    spec = client.get("/api/openapi.json").json()
    expected = {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert expected - set(fuzz.outcomes) == set()
    stuck = [
        label
        for label, statuses in fuzz.outcomes.items()
        if "{" in label and set(statuses) <= {404, 422}
    ]
    assert stuck == [], "these never reached a real row"
    total = sum(sum(statuses.values()) for statuses in fuzz.outcomes.values())
    by_status: Counter[int] = sum(fuzz.outcomes.values(), Counter())
    line = (
        f"API fuzz: {total} cases over {len(fuzz.outcomes)} operations in "
        f"{time.monotonic() - fuzz.started:.1f}s; statuses {dict(sorted(by_status.items()))}"
    )
    record_property("fuzz_cases", total)
    figures(line)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/crm/contacts", "application/json", b'{"email": "\xff\xfe@example.com"}'),
        ("/api/crm/contacts/import", "multipart/form-data", b"email\nann@example.com\n"),
    ],
    ids=["json-not-utf8", "multipart-without-boundary"],
)
def test_a_body_that_cannot_be_read_is_a_422(client, fuzzed: Fuzzed, path, content_type, body):
    """Found by the fuzz: FastAPI and Starlette answered these with an undocumented 400."""
    response = client.post(
        path, content=body, headers={**fuzzed.headers, "Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "body"
