"""The OpenAPI document: every error response documented with our error body, FastAPI's
own 422 schema replaced by it, and the bearer token declared for the routes that need it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from herald.auth.deps import current_user
from herald.bearer import NO_TOKEN
from herald.schemas import ErrorOut

Responses = dict[int | str, dict[str, Any]]

BEARER_SCHEME = "bearerAuth"
ERROR_SCHEMA_REF = "#/components/schemas/ErrorOut"
# FastAPI's default 422 body; ours replaces it (herald.error_handlers renders every error).
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


@dataclass(frozen=True)
class _Error:
    description: str
    code: str
    message: str
    details: Any = None
    headers: Mapping[str, Any] | None = None


ERRORS: dict[int, _Error] = {
    401: _Error(
        "Not authenticated: the access token is missing, expired or invalid.",
        "not_authenticated",
        NO_TOKEN,
    ),
    403: _Error(
        "Not allowed: the organisation's licence lacks the feature, or the caller's role "
        "may not do this; `code` (`feature_required`, `role_required`) and `details` say "
        "which.",
        "role_required",
        "This needs the ADMIN role.",
        details={"requiredRoles": ["ADMIN"]},
    ),
    404: _Error(
        "Not found, or it belongs to another organisation.",
        "not_found",
        "No such resource.",
    ),
    409: _Error(
        "Conflicts with the resource's current state.",
        "conflict",
        "Only a DRAFT campaign can be edited.",
    ),
    413: _Error(
        "The request body or the uploaded file is larger than the limit.",
        "payload_too_large",
        "The request body is larger than the limit of 8388608 bytes.",
    ),
    422: _Error(
        "Invalid input: `details` lists each field named with what is wrong with it.",
        "validation_error",
        "name: Field required",
        details=[{"field": "name", "message": "Field required"}],
    ),
    429: _Error(
        "Rate limited: too many attempts; try again after `Retry-After` seconds.",
        "too_many_attempts",
        "Too many failed logins. Try again later.",
        headers={
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    ),
    502: _Error(
        "The SMTP server could not be reached or refused the message; `details` has its answer.",
        "smtp_failed",
        "The SMTP server refused the recipient.",
        details={"smtpCode": 550, "smtpMessage": "5.1.1 No such user"},
    ),
    503: _Error(
        "The database cannot be reached.",
        "database_unavailable",
        "The database cannot be reached.",
    ),
}


def error_responses(*statuses: int, notes: Mapping[int, str] | None = None) -> Responses:
    """A ``responses=`` for a router or a route: each status answered with ``ErrorOut``,
    described by ``notes`` where given (what the status means on that route)."""
    notes = notes or {}
    responses: Responses = {}
    for status in statuses:
        error = ERRORS[status]
        example = {
            "error": {"code": error.code, "message": error.message, "details": error.details}
        }
        response: dict[str, Any] = {
            "model": ErrorOut,
            "description": notes.get(status, error.description),
            "content": {"application/json": {"example": example}},
        }
        if error.headers:
            response["headers"] = dict(error.headers)
        responses[status] = response
    return responses


# The sets most routes share; a route adds its own (404, 409, 422 ...) to its router's.
LOGGED_IN = error_responses(401)
GATED = error_responses(401, 403)
BODY = error_responses(413, 422)
INPUT = error_responses(422)
NOT_FOUND = error_responses(404)


def csv_response(description: str) -> Responses:
    return {
        200: {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}}
    }


def install_openapi(app: FastAPI) -> None:
    """Build ``/api/openapi.json`` with FastAPI, then finish it (once; it is cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            finish_document(document, app.routes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish_document(document: dict[str, Any], routes: list[BaseRoute]) -> None:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for route in api_routes(routes):
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            _replace_default_422(operation, route, schemas)
            if requires_login(route.dependant):
                operation["security"] = [{BEARER_SCHEME: []}]
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The `accessToken` from `POST /api/auth/login` or `/api/auth/refresh`.",
    }


def api_routes(routes: list[BaseRoute]) -> Iterator[RouteContext]:
    """Every FastAPI route in the document, with its effective (prefixed) path."""
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            yield route


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def requires_login(dependant: Dependant | None) -> bool:
    return dependant is not None and any(d.call is current_user for d in dependants(dependant))


def _replace_default_422(
    operation: dict[str, Any], route: RouteContext, schemas: dict[str, Any]
) -> None:
    """FastAPI documents its own 422 on a route that declares none. Where the route has a
    body or query parameters, ours takes its place; a route whose only parameters are
    path ids (plain strings: an unknown id is a 404) cannot answer 422, so it goes."""
    responses = operation.get("responses", {})
    if "422" not in responses or any(str(status) == "422" for status in route.responses):
        return
    dependant = route.dependant
    takes_input = route.body_field is not None or any(
        d.query_params or d.header_params or d.cookie_params
        for d in (dependants(dependant) if dependant else ())
    )
    if not takes_input:
        del responses["422"]
        return
    responses["422"] = {
        "description": ERRORS[422].description,
        "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }
    error_schema = ErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    for name, schema in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("ErrorOut", error_schema)
