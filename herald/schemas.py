"""Shared API schema pieces: camelCase JSON, the list envelope and the error body."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from herald.text import storable_problem

T = TypeVar("T")

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


class ApiModel(BaseModel):
    """JSON in camelCase, Python in snake_case; unknown input fields are rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        extra="forbid",
    )

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        """No NUL and no lone surrogates in any text field (else a 422, never a 500)."""
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and (problem := storable_problem(text)):
                raise ValueError(f"The text {problem}.")
        return value


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class ErrorDetail(ApiModel):
    code: str = Field(description="A stable snake_case code, e.g. `not_draft`.")
    message: str = Field(description="A human sentence saying what went wrong.")
    details: Any = Field(
        None,
        description="More facts, or null. For 422: a list of `{field, message}`.",
    )


class ErrorOut(ApiModel):
    """The body of every error answer."""

    error: ErrorDetail


class HealthOut(ApiModel):
    status: str = Field(description='"ok" once the app can reach its database.')
