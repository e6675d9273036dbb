"""/api/openapi.json documents every API route the app serves: request and response
schemas, the error responses in the contract's shape, the bearer token where a login is
needed. The routes are walked from the app itself, so a new route is checked too."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from herald.auth.deps import current_user

ERROR_REF = "#/components/schemas/ErrorOut"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture
def document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def api_routes(live_server):
    """(path, method, route) for every FastAPI route under /api, documented or not."""
    found = []
    for route in iter_route_contexts(live_server.server.config.app.routes):
        original = route.original_route
        if (
            isinstance(original, APIRoute)
            and route.path_format.startswith("/api")
            and original.endpoint.__module__ != "herald.apidocs"  # the reference page itself
        ):
            for method in sorted(route.methods):
                found.append((route.path_format, method.lower(), route))
    assert len(found) >= 30, "the walk found too few API routes"
    return found


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def needs_login(route) -> bool:
    return any(d.call is current_user for d in dependants(route.dependant))


def has_role_or_licence_gate(route) -> bool:
    """ADMIN_ONLY, CRM_WRITERS, MARKETING_READ/WRITE: closures made by require
    (herald.auth.deps); they answer 403."""
    names = (getattr(d.call, "__qualname__", "") for d in dependants(route.dependant))
    return any(name.startswith("require.") for name in names)


def takes_input(route) -> bool:
    return route.body_field is not None or any(
        d.query_params or d.header_params or d.cookie_params for d in dependants(route.dependant)
    )


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_api_route_is_in_the_document_and_nothing_else(document, api_routes):
    served = {(path, method) for path, method, _ in api_routes}
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        if path.startswith("/api")
        for method in item
        if method in METHODS
    }
    assert served - documented == set(), "routes missing from the document"
    assert documented - served == set(), "documented operations that no route serves"


def test_each_operation_has_a_summary_a_description_and_a_success_schema(document, api_routes):
    for path, method, route in api_routes:
        operation = document["paths"][path][method]
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), f"{where}: no description (docstring)"
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        expected = str(route.status_code or 200)
        assert list(success) == [expected], f"{where}: documents {list(success)}"
        response = success[expected]
        if expected == "204":
            assert "content" not in response, f"{where}: a 204 has no body"
            continue
        content = response.get("content", {})
        if path.endswith(".csv"):
            assert list(content) == ["text/csv"], where
            assert content["text/csv"]["schema"] == {"type": "string"}
            continue
        if path.endswith("/raw"):  # a bounce report as received
            assert list(content) == ["text/plain"], where
            continue
        assert list(content) == ["application/json"], where
        schema = content["application/json"].get("schema", {})
        assert "$ref" in schema or "type" in schema, f"{where}: no response schema"
        assert resolve(document, schema).get("properties"), f"{where}: an empty schema"


# Routes that read their body themselves, once their dependencies (login, role) have run.
READ_AFTER_AUTH = {("/api/crm/contacts/import", "post")}
# Bodies a caller may leave out: documented, not required.
OPTIONAL_BODIES = {("/api/marketing/campaigns/{campaign_id}/duplicate", "post")}


def test_each_route_with_a_body_documents_it(document, api_routes):
    for path, method, route in api_routes:
        operation = document["paths"][path][method]
        where = f"{method.upper()} {path}"
        if route.body_field is None and (path, method) not in READ_AFTER_AUTH:
            assert "requestBody" not in operation, where
            continue
        body = operation.get("requestBody")
        optional = (path, method) in OPTIONAL_BODIES
        assert body and bool(body.get("required")) is not optional, f"{where}: no requestBody"
        (media_type, content), *rest = body["content"].items()
        assert not rest, where
        schema = content["schema"]
        if optional:  # the model, or null
            (schema,) = [s for s in schema["anyOf"] if s.get("type") != "null"]
        schema = resolve(document, schema)
        assert schema.get("properties"), where
        if media_type == "multipart/form-data":
            assert "file" in schema["properties"] and schema["required"] == ["file"], where
        else:
            assert media_type == "application/json", where


def test_the_csv_import_is_a_multipart_upload_of_a_file(document):
    body = document["paths"]["/api/crm/contacts/import"]["post"]["requestBody"]
    assert list(body["content"]) == ["multipart/form-data"]
    schema = resolve(document, body["content"]["multipart/form-data"]["schema"])
    assert schema["properties"]["file"]["type"] == "string"


def test_errors_are_documented_in_the_error_shape(document, api_routes):
    for path, method, route in api_routes:
        operation = document["paths"][path][method]
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        if needs_login(route):
            assert "401" in responses, f"{where}: a login is needed, no 401"
        if has_role_or_licence_gate(route):
            assert "403" in responses, f"{where}: a role or licence gate, no 403"
        if takes_input(route):
            assert "422" in responses, f"{where}: takes input, no 422"
        if route.dependant.path_params:
            assert "404" in responses, f"{where}: an id in the path, no 404"
        for code, response in responses.items():
            if code[0] in "45":
                assert response.get("description"), f"{where} {code}"
                content = response.get("content", {})
                assert list(content) == ["application/json"], f"{where} {code}"
                schema = content["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{where} {code}: {schema}"
    error = resolve(document, {"$ref": ERROR_REF})
    detail = resolve(document, error["properties"]["error"])
    assert set(detail["properties"]) == {"code", "message", "details"}


def test_fastapi_validation_schemas_are_gone(document):
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "ErrorOut" in schemas


def test_the_bearer_token_is_declared_where_a_login_is_needed(document, api_routes):
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s == {**s, "type": "http", "scheme": "bearer"}]
    assert bearer, "no HTTP bearer scheme: /api/docs would have no Authorize button"
    for path, method, route in api_routes:
        security = document["paths"][path][method].get("security")
        where = f"{method.upper()} {path}"
        if needs_login(route):
            assert security == [{bearer[0]: []}], where
        else:
            assert security is None, f"{where} is public"
    assert "security" not in document["paths"]["/api/auth/login"]["post"]
    assert "security" not in document["paths"]["/api/auth/refresh"]["post"]


def test_a_route_documented_as_secured_answers_401_without_a_token(client, document):
    """The document says what the app does: every secured operation refuses an anonymous
    call with 401 in the error shape."""
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or not operation.get("security"):
                continue
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            response = client.request(method.upper(), url)
            assert response.status_code == 401, f"{method.upper()} {path}: {response.text}"
            assert response.json()["error"]["code"] == "not_authenticated"
            checked += 1
    assert checked >= 25


def test_the_document_is_well_formed_openapi_3(document):
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for name in re.findall(r"\{([^}]+)\}", path):
            for operation in (item[m] for m in item if m in METHODS):
                in_path = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
                assert name in in_path, f"{path}: path parameter {name} not declared"
        for method, operation in item.items():
            assert method in METHODS, f"{path}: {method}"
            assert operation["responses"], f"{method} {path}"
            for code, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", code), code
                assert response["description"], f"{method} {path} {code}"
            operation_ids.append(operation["operationId"])
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"
    try:
        from openapi_spec_validator import validate
    except ImportError:
        return
    validate(document)


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in response.text
