"""Contacts over the JSON API: create, read, edit, delete, validation, roles and tenancy."""

from __future__ import annotations

import uuid

import pytest

from tests.crm.factories import crm_caller, make_contact, unique_email

FIELDS = {
    "id",
    "email",
    "firstName",
    "lastName",
    "companyName",
    "status",
    "marketingOptOut",
    "emailStatus",
    "emailStatusReason",
    "emailStatusAt",
    "createdAt",
    "updatedAt",
}


def assert_field_error(response, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]], error


def test_create_read_patch_delete(client, runtime):
    caller = crm_caller(client, runtime)
    email = unique_email()
    created = client.post(
        "/api/crm/contacts",
        json={
            "email": f"  {email}  ",
            "firstName": "Grace",
            "lastName": "Hopper",
            "companyName": "Navy",
            "status": "PROSPECT",
            "marketingOptOut": True,
        },
        headers=caller.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == FIELDS
    assert body["email"] == email  # trimmed
    assert (body["firstName"], body["lastName"], body["companyName"]) == ("Grace", "Hopper", "Navy")
    assert body["status"] == "PROSPECT"
    assert body["marketingOptOut"] is True
    assert body["createdAt"].endswith(("Z", "+00:00"))

    url = f"/api/crm/contacts/{body['id']}"
    assert client.get(url, headers=caller.headers).json() == body

    patched = client.patch(
        url, json={"lastName": "Murray", "marketingOptOut": False}, headers=caller.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["lastName"] == "Murray"
    assert patched.json()["firstName"] == "Grace"  # untouched
    assert patched.json()["marketingOptOut"] is False
    assert patched.json()["updatedAt"] >= body["updatedAt"]

    deleted = client.delete(url, headers=caller.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(url, headers=caller.headers).status_code == 404


def test_defaults_and_contact_without_email(client, runtime):
    caller = crm_caller(client, runtime)
    first = client.post("/api/crm/contacts", json={"firstName": "No"}, headers=caller.headers)
    second = client.post("/api/crm/contacts", json={"email": "  "}, headers=caller.headers)
    for response in (first, second):
        assert response.status_code == 201, response.text
        assert response.json()["email"] is None
        assert response.json()["status"] == "LEAD"
        assert response.json()["marketingOptOut"] is False


def test_patch_can_remove_the_email(client, runtime):
    caller = crm_caller(client, runtime)
    contact = make_contact(runtime, caller.org_id, unique_email())
    response = client.patch(
        f"/api/crm/contacts/{contact.id}", json={"email": None}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] is None


def test_email_unique_per_org_case_insensitively(client, runtime):
    caller = crm_caller(client, runtime)
    email = unique_email("Mixed.Case")
    assert (
        client.post("/api/crm/contacts", json={"email": email}, headers=caller.headers).status_code
        == 201
    )
    duplicate = client.post(
        "/api/crm/contacts", json={"email": f" {email.upper()} "}, headers=caller.headers
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "email_taken"

    other = make_contact(runtime, caller.org_id, unique_email())
    clash = client.patch(
        f"/api/crm/contacts/{other.id}", json={"email": email.lower()}, headers=caller.headers
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "email_taken"

    # Another org may hold the same address.
    elsewhere = crm_caller(client, runtime)
    response = client.post("/api/crm/contacts", json={"email": email}, headers=elsewhere.headers)
    assert response.status_code == 201


def test_patch_keeps_own_email_in_another_case(client, runtime):
    caller = crm_caller(client, runtime)
    email = unique_email()
    contact = make_contact(runtime, caller.org_id, email)
    response = client.patch(
        f"/api/crm/contacts/{contact.id}", json={"email": email.upper()}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == email.upper()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "someone@localhost"}, "email"),
        ({"email": "x" * 400 + "@example.com"}, "email"),
        ({"email": "a\u0000b@example.com"}, "email"),
        ({"firstName": "x" * 201}, "firstName"),
        ({"lastName": "Null\u0000Byte"}, "lastName"),
        ({"companyName": "Line\r\nBreak"}, "companyName"),
        ({"status": "NOT_A_STATUS"}, "status"),
        ({"marketingOptOut": "yes"}, "marketingOptOut"),
        ({"firstName": 12}, "firstName"),
        ({"nickname": "Bob"}, "nickname"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(client, runtime, body, field):
    caller = crm_caller(client, runtime)
    response = client.post("/api/crm/contacts", json=body, headers=caller.headers)
    assert_field_error(response, field)


def test_patch_rejects_bad_input(client, runtime):
    caller = crm_caller(client, runtime)
    contact = make_contact(runtime, caller.org_id, unique_email())
    url = f"/api/crm/contacts/{contact.id}"
    assert_field_error(client.patch(url, json={"status": None}, headers=caller.headers), "status")
    assert_field_error(client.patch(url, json={"status": "VIP"}, headers=caller.headers), "status")
    assert_field_error(
        client.patch(url, json={"marketingOptOut": None}, headers=caller.headers),
        "marketingOptOut",
    )
    assert_field_error(
        client.patch(url, json={"id": str(uuid.uuid4())}, headers=caller.headers), "id"
    )


def test_status_is_matched_case_insensitively(client, runtime):
    caller = crm_caller(client, runtime)
    response = client.post("/api/crm/contacts", json={"status": "customer"}, headers=caller.headers)
    assert response.status_code == 201
    assert response.json()["status"] == "CUSTOMER"


def test_statuses_in_position_order(client, runtime):
    caller = crm_caller(client, runtime, "USER")
    response = client.get("/api/crm/statuses", headers=caller.headers)
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["items"]] == [
        "LEAD",
        "PROSPECT",
        "CUSTOMER",
        "INACTIVE",
    ]
    assert response.json()["total"] == 4


def test_other_org_and_malformed_ids_are_not_found(client, runtime):
    caller = crm_caller(client, runtime)
    stranger = crm_caller(client, runtime)
    theirs = make_contact(runtime, stranger.org_id, unique_email())
    for contact_id in (str(theirs.id), str(uuid.uuid4()), "not-a-uuid", "1"):
        url = f"/api/crm/contacts/{contact_id}"
        for response in (
            client.get(url, headers=caller.headers),
            client.patch(url, json={"firstName": "Mallory"}, headers=caller.headers),
            client.delete(url, headers=caller.headers),
        ):
            assert response.status_code == 404, (contact_id, response.text)
            assert response.json()["error"]["code"] == "not_found"
    # Still there, unchanged, for its own org.
    mine = client.get(f"/api/crm/contacts/{theirs.id}", headers=stranger.headers)
    assert mine.status_code == 200
    assert mine.json()["firstName"] == "Ada"


@pytest.mark.parametrize("role", ["ADMIN", "MANAGER", "USER"])
def test_role_matrix(client, runtime, role):
    caller = crm_caller(client, runtime, role)
    contact = make_contact(runtime, caller.org_id, unique_email())
    url = f"/api/crm/contacts/{contact.id}"
    assert client.get("/api/crm/contacts", headers=caller.headers).status_code == 200
    assert client.get(url, headers=caller.headers).status_code == 200
    assert client.get("/api/crm/statuses", headers=caller.headers).status_code == 200

    writes = [
        client.post("/api/crm/contacts", json={"firstName": "New"}, headers=caller.headers),
        client.patch(url, json={"firstName": "Changed"}, headers=caller.headers),
        client.post(
            "/api/crm/contacts/import",
            files={"file": ("c.csv", b"email\n" + unique_email().encode() + b"\n")},
            headers=caller.headers,
        ),
        client.delete(url, headers=caller.headers),
    ]
    expected = [403] * 4 if role == "USER" else [201, 200, 200, 204]
    assert [r.status_code for r in writes] == expected, [r.text for r in writes]
    if role == "USER":
        assert all(r.json()["error"]["code"] == "role_required" for r in writes)


def test_needs_authentication(client):
    assert client.get("/api/crm/contacts").status_code == 401
    assert client.post("/api/crm/contacts", json={}).status_code == 401
