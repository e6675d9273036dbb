"""Shared API schema pieces: camelCase JSON and the list envelope."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

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


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
