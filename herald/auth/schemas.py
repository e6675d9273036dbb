"""Auth request and response bodies."""

from __future__ import annotations

import uuid

from pydantic import Field

from herald.schemas import ApiModel


class LoginIn(ApiModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    mfa_code: str | None = Field(default=None, max_length=16)


class UserOut(ApiModel):
    id: uuid.UUID
    email: str
    role: str
    org_id: uuid.UUID


class TokenOut(ApiModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_in: int
    user: UserOut


class MfaSetupOut(ApiModel):
    secret: str
    otpauth_url: str


class PasswordChangeIn(ApiModel):
    current: str = Field(max_length=1024, description="The password in use now.")
    new: str = Field(max_length=1024, description="At least 8 characters.")


class MfaEnableIn(ApiModel):
    code: str = Field(max_length=16)


class MfaEnableOut(ApiModel):
    mfa_enabled: bool
