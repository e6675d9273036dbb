"""Listing contacts: order, pagination, status filter and search."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.crm.factories import crm_caller, make_contact


def _emails(response) -> list[str | None]:
    assert response.status_code == 200, response.text
    return [c["email"] for c in response.json()["items"]]


def test_newest_first_with_pagination(client, runtime):
    caller = crm_caller(client, runtime, "USER")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(7):
        make_contact(
            runtime, caller.org_id, f"c{i}@example.com", created_at=start + dt.timedelta(i)
        )

    first = client.get("/api/crm/contacts", params={"pageSize": 3}, headers=caller.headers)
    body = first.json()
    assert (body["total"], body["page"], body["pageSize"]) == (7, 1, 3)
    assert _emails(first) == ["c6@example.com", "c5@example.com", "c4@example.com"]

    last = client.get(
        "/api/crm/contacts", params={"page": 3, "pageSize": 3}, headers=caller.headers
    )
    assert _emails(last) == ["c0@example.com"]
    assert last.json()["page"] == 3

    beyond = client.get("/api/crm/contacts", params={"page": 9}, headers=caller.headers)
    assert _emails(beyond) == []
    assert beyond.json()["total"] == 7

    default = client.get("/api/crm/contacts", headers=caller.headers).json()
    assert (default["page"], default["pageSize"]) == (1, 50)


def test_same_created_at_is_ordered_by_id_descending(client, runtime):
    caller = crm_caller(client, runtime)
    moment = dt.datetime(2024, 5, 5, tzinfo=dt.UTC)
    ids = [str(make_contact(runtime, caller.org_id, created_at=moment).id) for _ in range(4)]
    items = client.get("/api/crm/contacts", headers=caller.headers).json()["items"]
    assert [c["id"] for c in items] == sorted(ids, reverse=True)


def test_status_filter(client, runtime):
    caller = crm_caller(client, runtime)
    make_contact(runtime, caller.org_id, "lead@example.com", status="LEAD")
    make_contact(runtime, caller.org_id, "cust@example.com", status="CUSTOMER")
    response = client.get(
        "/api/crm/contacts", params={"status": "CUSTOMER"}, headers=caller.headers
    )
    assert _emails(response) == ["cust@example.com"]
    assert response.json()["total"] == 1
    unknown = client.get("/api/crm/contacts", params={"status": "VIP"}, headers=caller.headers)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"][0]["field"] == "status"


def test_search_is_case_insensitive_over_email_and_names(client, runtime):
    caller = crm_caller(client, runtime)
    make_contact(runtime, caller.org_id, "Ada.Byron@Example.com", first_name="Ada", last_name="B")
    make_contact(runtime, caller.org_id, "g@example.com", first_name="Grace", last_name="HOPPER")
    make_contact(runtime, caller.org_id, "l@example.com", first_name="L", company_name="Acme Ltd")
    make_contact(runtime, caller.org_id, "pct@example.com", first_name="100%_sure")

    def search(q: str) -> list[str | None]:
        return sorted(
            _emails(client.get("/api/crm/contacts", params={"q": q}, headers=caller.headers))
        )

    assert search("ada.byron") == ["Ada.Byron@Example.com"]
    assert search("hopper") == ["g@example.com"]
    assert search("ACME") == ["l@example.com"]
    assert search("race") == ["g@example.com"]
    assert search("%") == ["pct@example.com"]  # wildcards are literal
    assert search("_") == ["pct@example.com"]
    assert search("nobody") == []
    assert len(search("example.com")) == 4


def test_search_and_filter_combine_and_stay_in_the_org(client, runtime):
    caller = crm_caller(client, runtime)
    other = crm_caller(client, runtime)
    make_contact(runtime, caller.org_id, "mine@example.com", status="PROSPECT")
    make_contact(runtime, caller.org_id, "mine-too@example.com", status="LEAD")
    make_contact(runtime, other.org_id, "theirs-mine@example.com", status="PROSPECT")
    response = client.get(
        "/api/crm/contacts", params={"q": "mine", "status": "PROSPECT"}, headers=caller.headers
    )
    assert _emails(response) == ["mine@example.com"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"page": 10**20}, "page"),
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 501}, "pageSize"),
        ({"q": "\u0000"}, "q"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_list_parameters(client, runtime, params, field):
    caller = crm_caller(client, runtime)
    response = client.get("/api/crm/contacts", params=params, headers=caller.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == field


def test_page_size_500_is_allowed(client, runtime):
    caller = crm_caller(client, runtime)
    response = client.get("/api/crm/contacts", params={"pageSize": 500}, headers=caller.headers)
    assert response.status_code == 200
    assert response.json()["pageSize"] == 500
