"""CSV import over HTTP: counts, line numbers, updates, file-level errors and the size limit."""

from __future__ import annotations

import httpx

from tests.crm.factories import crm_caller, make_contact


def upload(client: httpx.Client, headers: dict[str, str], content: bytes | str) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        "/api/crm/contacts/import",
        files={"file": ("contacts.csv", data, "text/csv")},
        headers=headers,
    )


def contacts_of(client: httpx.Client, headers: dict[str, str]) -> dict[str | None, dict]:
    items = client.get("/api/crm/contacts", params={"pageSize": 500}, headers=headers).json()
    return {c["email"]: c for c in items["items"]}


def test_import_creates_updates_and_reports_bad_rows(client, runtime):
    caller = crm_caller(client, runtime, "MANAGER")
    make_contact(runtime, caller.org_id, "Known@Example.com", first_name="Old", last_name="Name")
    csv_text = (
        "email,firstName,lastName,companyName,status,marketingOptOut\n"
        "new@example.com,New,Person,Acme,PROSPECT,false\n"  # line 2: created
        "known@example.com,Renamed,,,CUSTOMER,\n"  # line 3: updates, blank keeps lastName
        "not-an-email,Bad,Row,,,\n"  # line 4: invalid email
        ",No,Email,,,\n"  # line 5: created without email
        "other@example.com,,,,VIP,\n"  # line 6: unknown status
        "  NEW@example.com ,Again,,,,yes\n"  # line 7: duplicate in the file: updates line 2
        "x@example.com,,,,,maybe\n"  # line 8: bad boolean
    )
    response = upload(client, caller.headers, csv_text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"created", "updated", "skipped", "errors"}
    assert (body["created"], body["updated"], body["skipped"]) == (2, 2, 3)
    assert [e["line"] for e in body["errors"]] == [4, 6, 8]
    assert "email" in body["errors"][0]["message"]
    assert "status" in body["errors"][1]["message"]
    assert "marketingOptOut" in body["errors"][2]["message"]

    contacts = contacts_of(client, caller.headers)
    # A matched contact keeps its stored address; the first row of a new address sets it.
    assert set(contacts) == {"new@example.com", "Known@Example.com", None}
    new = contacts["new@example.com"]
    assert (new["firstName"], new["lastName"], new["companyName"]) == ("Again", "Person", "Acme")
    assert new["status"] == "PROSPECT"
    assert new["marketingOptOut"] is True
    known = contacts["Known@Example.com"]
    assert (known["firstName"], known["lastName"], known["status"]) == (
        "Renamed",
        "Name",
        "CUSTOMER",
    )
    assert contacts[None]["firstName"] == "No"


def test_headers_are_forgiving_about_case_and_separators(client, runtime):
    caller = crm_caller(client, runtime)
    response = upload(
        client,
        caller.headers,
        "\ufeffEMAIL;First Name;last_name;company-name\r\na@example.com;Ann;Lee;Co\r\n",
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    contact = contacts_of(client, caller.headers)["a@example.com"]
    assert (contact["firstName"], contact["lastName"], contact["companyName"]) == (
        "Ann",
        "Lee",
        "Co",
    )


def test_line_numbers_count_records_and_blank_rows_are_ignored(client, runtime):
    caller = crm_caller(client, runtime)
    response = upload(
        client,
        caller.headers,
        'email,firstName\n"a@example.com","Multi\nLine"\n\n,,\nbad,\nb@example.com,B\n',
    )
    body = response.json()
    # The quoted cell spans two lines of text but is one record (line 2); blank records count.
    assert body["errors"] == [
        {"line": 2, "message": body["errors"][0]["message"]},
        {"line": 5, "message": body["errors"][1]["message"]},
    ]
    assert "control characters" in body["errors"][0]["message"]
    assert (body["created"], body["skipped"]) == (1, 2)


def test_opt_out_is_never_cleared_by_an_import(client, runtime):
    caller = crm_caller(client, runtime)
    make_contact(runtime, caller.org_id, "gone@example.com", marketing_opt_out=True)
    response = upload(client, caller.headers, "email,marketingOptOut\ngone@example.com,false\n")
    assert response.json()["updated"] == 1
    assert contacts_of(client, caller.headers)["gone@example.com"]["marketingOptOut"] is True


def test_file_level_errors_change_nothing(client, runtime):
    caller = crm_caller(client, runtime)
    valid_rows = "".join(f"ok{i}@example.com,Ok\n" for i in range(1500))
    cases = {
        "empty": b"",
        "unknown column": b"email,nickname\na@example.com,Al\n",
        "no header": b"a@example.com,Al,Smith\n",
        "duplicate column": b"email,Email\na@example.com,a@example.com\n",
        "unnamed column": b"email,,firstName\na@example.com,,Al\n",
        # Rows are written in chunks of 1000: the bad bytes come after the first chunk.
        "not utf-8": ("email,firstName\n" + valid_rows).encode() + b"late@example.com,\xff\xfe\n",
        "binary": b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xd8\xff\xe0",
    }
    for name, content in cases.items():
        response = upload(client, caller.headers, content)
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error", name
        assert error["details"][0]["field"] == "file", name
        assert error["message"], name
    assert contacts_of(client, caller.headers) == {}


def test_error_messages_say_what_is_wrong(client, runtime):
    caller = crm_caller(client, runtime)
    unknown = upload(client, caller.headers, "email,nickname\n").json()["error"]["message"]
    assert "'nickname'" in unknown and "firstName" in unknown
    latin1 = upload(
        client, caller.headers, "email,firstName\na@example.com,Jos\xe9\n".encode("latin-1")
    )
    assert "UTF-8" in latin1.json()["error"]["message"]
    assert "line 2" in latin1.json()["error"]["message"]


def test_upload_needs_a_file_field(client, runtime):
    caller = crm_caller(client, runtime)
    response = client.post("/api/crm/contacts/import", data={"other": "x"}, headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "file"


def test_file_over_the_limit_is_413(start_server, runtime):
    server = start_server(max_upload_bytes=1000)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        caller = crm_caller(client, runtime)
        small = upload(client, caller.headers, "email\nsmall@example.com\n")
        assert small.status_code == 200, small.text
        big = "email\n" + "".join(f"user{i}@example.com\n" for i in range(100))
        assert len(big) > 1000
        response = upload(client, caller.headers, big)
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        # Far over the limit: refused from the Content-Length, before the body is read.
        huge = upload(client, caller.headers, b"email\n" + b"x" * 200_000)
        assert huge.status_code == 413
        assert set(contacts_of(client, caller.headers)) == {"small@example.com"}


def test_streamed_body_without_length_over_the_limit_is_413(start_server, runtime):
    server = start_server(max_upload_bytes=1000)
    boundary = "herald-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nemail\n"
    ).encode()

    def chunks():
        yield head
        for _ in range(200):
            yield b"someone@example.com\n" * 50
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=server.url, timeout=30) as client:
        caller = crm_caller(client, runtime)
        response = client.post(
            "/api/crm/contacts/import",
            content=chunks(),
            headers={**caller.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
