"""Login with password and TOTP, refresh rotation with reuse detection, logout, revoking all of
a user's sessions, password change, MFA enrolment."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth import throttle, totp
from herald.auth.models import RefreshToken
from herald.auth.passwords import check_new_password, hash_password, verify_password
from herald.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from herald.db import utcnow
from herald.errors import Conflict, NotAuthenticated, ValidationFailed
from herald.orgs.models import Org, User
from herald.secretbox import SecretBox
from herald.settings import Settings
from herald.text import storable_problem

INVALID_CREDENTIALS = "The email or password is incorrect."


@dataclass
class IssuedTokens:
    access_token: str
    refresh_token: str
    user: User


def mfa_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key, "herald.mfa")


def _issue(session: Session, settings: Settings, user: User, family: uuid.UUID) -> IssuedTokens:
    token, token_hash = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family,
            token_hash=token_hash,
            expires_at=utcnow() + dt.timedelta(days=settings.refresh_token_days),
        )
    )
    session.flush()
    access = issue_access_token(settings, user.id, user.org_id, user.role, epoch=user.session_epoch)
    return IssuedTokens(access_token=access, refresh_token=token, user=user)


def _burn_totp_step(session: Session, user: User, step: int) -> bool:
    """Mark ``step`` used; False when it (or a later one) was used already: a replay."""
    result = session.execute(
        update(User)
        .where(User.id == user.id)
        .where((User.mfa_last_step.is_(None)) | (User.mfa_last_step < step))
        .values(mfa_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _mfa_seed(settings: Settings, sealed: str) -> str:
    """The user's TOTP seed; unreadable once HERALD_SECRET_KEY changed (see operations.md)."""
    try:
        return mfa_box(settings).open(sealed)
    except ValueError:
        raise NotAuthenticated(
            "This account's MFA enrolment cannot be read since the server's secret key "
            "changed. Ask an administrator to reset it (herald user reset-mfa).",
            code="mfa_unreadable",
        ) from None


def check_mfa(session: Session, settings: Settings, user: User, code: str | None) -> None:
    if not user.mfa_enabled or not user.mfa_secret:
        return
    if not code:
        raise NotAuthenticated("This account needs an MFA code.", code="mfa_required")
    step = totp.matching_step(_mfa_seed(settings, user.mfa_secret), code)
    if step is None or not _burn_totp_step(session, user, step):
        raise NotAuthenticated("The MFA code is invalid or was already used.", code="mfa_invalid")


def authenticate(
    session: Session, settings: Settings, email: str, password: str, mfa_code: str | None
) -> User:
    """The user for these credentials, or NotAuthenticated. Throttling is the caller's edge."""
    if storable_problem(email) or storable_problem(password):
        raise NotAuthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
    normalised = email.strip().lower()
    user = session.scalars(select(User).where(User.email == normalised)).one_or_none()
    password_ok = verify_password(user.password_hash if user else None, password)
    if user is None or not password_ok or not user.is_active:
        raise NotAuthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
    org = session.get(Org, user.org_id)
    if org is None:
        raise NotAuthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
    check_mfa(session, settings, user, mfa_code)
    return user


def login(
    session: Session,
    settings: Settings,
    email: str,
    password: str,
    mfa_code: str | None,
    address: str,
) -> IssuedTokens:
    """Tokens for these credentials. The attempt is counted as a failure before the password
    is checked (and forgiven on success), under a per-account lock, so parallel guesses
    cannot slip past the throttle; a failure's count is kept although the answer is 401."""
    throttle.lock_account(session, email)
    throttle.check_allowed(session, settings, email, address)
    attempt = throttle.record_failure(session, email, address)
    try:
        user = authenticate(session, settings, email, password, mfa_code)
    except NotAuthenticated as exc:
        exc.keep_changes = True
        audit.failed_login(session, email, exc.code, address)
        raise
    throttle.clear_account(session, settings, email, address, attempt)
    user.last_login_at = utcnow()
    audit.record(
        session,
        audit.user_actor(user),
        "auth.login",
        target=f"user {user.email}",
        details={"address": address},
    )
    return _issue(session, settings, user, family=uuid.uuid4())


def _revoke_family(session: Session, family_id: uuid.UUID) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def refresh(session: Session, settings: Settings, token: str | None) -> IssuedTokens:
    """Rotate: the presented token is spent and a new one of the same family is issued.

    Presenting a spent token means it leaked (or two clients share it): the whole family
    is revoked, and that is kept even though the answer is 401.
    """
    if not token:
        raise NotAuthenticated("No refresh token.", code="refresh_missing")
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    ).one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise NotAuthenticated("The refresh token is invalid.", code="refresh_invalid")
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not spent.rowcount:  # type: ignore[attr-defined]
        _revoke_family(session, row.family_id)
        raise NotAuthenticated(
            "The refresh token was already used; this session has been signed out.",
            code="refresh_reused",
            keep_changes=True,
        )
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("The refresh token is invalid.", code="refresh_invalid")
    return _issue(session, settings, user, family=row.family_id)


def is_revoked(session: Session, token_hash: str) -> bool:
    """Whether the refresh token with this hash is revoked (or unknown)."""
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    ).one_or_none()
    return row is None or row.revoked_at is not None


def logout(session: Session, token: str | None) -> None:
    if not token:
        return
    row = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    ).one_or_none()
    if row is not None:
        _revoke_family(session, row.family_id)


def revoke_sessions(session: Session, user: User) -> None:
    """Sign the user out everywhere, at once: every refresh token revoked, and every access
    token issued so far refused (the session epoch moves on)."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    user.session_epoch = (user.session_epoch or 0) + 1
    session.flush()


def change_password(
    session: Session, settings: Settings, user: User, current: str, new: str, address: str
) -> IssuedTokens:
    """A new password for the user: every session revoked, and new tokens for this one.
    A wrong current password counts as a failed login (so it cannot be guessed here)."""
    throttle.lock_account(session, user.email)
    throttle.check_allowed(session, settings, user.email, address)
    if storable_problem(current) or not verify_password(user.password_hash, current):
        throttle.record_failure(session, user.email, address)
        wrong = ValidationFailed(
            "The current password is incorrect.", field="current", code="wrong_password"
        )
        wrong.keep_changes = True  # the failure counts
        raise wrong
    check_new_password(new, field="new")
    user.password_hash = hash_password(new)
    revoke_sessions(session, user)
    audit.record(
        session, audit.user_actor(user), "user.password_changed", target=f"user {user.email}"
    )
    return _issue(session, settings, user, family=uuid.uuid4())


def sign_out_everywhere(session: Session, user: User) -> None:
    """The user's own "Sign out everywhere": every session ended, and the audit log says so."""
    revoke_sessions(session, user)
    audit.record(
        session, audit.user_actor(user), "auth.sessions_revoked", target=f"user {user.email}"
    )


def mfa_setup(session: Session, settings: Settings, user: User) -> tuple[str, str]:
    """Start (or restart) enrolment: a new secret, pending until a code proves it."""
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled for this account.", code="mfa_already_enabled")
    secret = totp.new_secret()
    user.mfa_secret = mfa_box(settings).seal(secret)
    user.mfa_last_step = None
    session.flush()
    audit.record(session, audit.user_actor(user), "auth.mfa_setup", target=f"user {user.email}")
    return secret, totp.provisioning_url(secret, user.email)


def reset_mfa(session: Session, user: User, actor: audit.Actor) -> None:
    """Turn MFA off for a user (an operator's remedy for a lost device or a new secret key);
    the user enrols again from My account."""
    user.mfa_enabled = False
    user.mfa_secret = None
    user.mfa_last_step = None
    audit.record(session, actor, "auth.mfa_reset", target=f"user {user.email}")


def mfa_enable(session: Session, settings: Settings, user: User, code: str) -> None:
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled for this account.", code="mfa_already_enabled")
    if not user.mfa_secret:
        raise Conflict("Call MFA setup first.", code="mfa_not_set_up")
    try:
        seed = mfa_box(settings).open(user.mfa_secret)
    except ValueError:
        raise Conflict(
            "The pending enrolment cannot be read any more; start MFA setup again.",
            code="mfa_not_set_up",
        ) from None
    step = totp.matching_step(seed, code)
    if step is None or not _burn_totp_step(session, user, step):
        raise ValidationFailed("The code does not match.", field="code", code="mfa_invalid")
    user.mfa_enabled = True
    session.flush()
    audit.record(session, audit.user_actor(user), "auth.mfa_enabled", target=f"user {user.email}")
