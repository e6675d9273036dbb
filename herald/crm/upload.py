"""The CSV upload of an import, read from the request only once the caller has been
authenticated and allowed (the handler's dependencies ran): its own size check, and the
multipart parsing (the request body as a whole is bounded by herald.bodylimit)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from herald.errors import PayloadTooLarge, ValidationFailed

FILE_FIELD = "file"
# What the handler's OpenAPI entry says it takes, since it reads the body itself.
MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "A CSV file; the header names the columns.",
                        }
                    },
                }
            }
        },
    }
}


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than the limit of {limit} bytes.",
        details={"maxBytes": limit},
    )


async def read_form(request: Request) -> FormData:
    """The multipart body, spooled (a file part to disk past 1 MiB); close it when done."""
    try:
        return await request.form(max_files=1, max_fields=10)
    except ClientDisconnect:
        # the client went away mid-upload: bad input, not a server error
        raise ValidationFailed("The upload ended before the file did.", field=FILE_FIELD) from None


def uploaded_file(form: FormData, limit: int) -> UploadFile:
    """The form's CSV file; 422 naming ``file`` without one, 413 over the limit."""
    file = form.get(FILE_FIELD)
    if not isinstance(file, UploadFile) or not file.filename:
        raise ValidationFailed("Choose a CSV file to import.", field=FILE_FIELD)
    if file.size is not None and file.size > limit:
        raise too_large(limit)
    return file
