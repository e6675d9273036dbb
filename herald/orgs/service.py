"""Creating orgs and users, and switching licence features."""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from herald.audit import service as audit
from herald.auth.passwords import check_new_password, hash_password
from herald.auth.service import revoke_sessions
from herald.crm.models import DEFAULT_STATUSES, ContactStatus
from herald.errors import Conflict, NotFound, ValidationFailed
from herald.orgs.models import KNOWN_FEATURES, Org, Role, User
from herald.tenancy import parse_id


def parse_features(features: list[str]) -> list[str]:
    cleaned = sorted({f.strip().lower() for f in features if f.strip()})
    unknown = [f for f in cleaned if f not in KNOWN_FEATURES]
    if unknown:
        raise ValidationFailed(
            f"Unknown licence feature(s): {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(KNOWN_FEATURES))}.",
            field="features",
        )
    return cleaned


def create_org(session: Session, name: str, features: list[str] | None = None) -> Org:
    name = name.strip()
    if not name:
        raise ValidationFailed("An org needs a name.", field="name")
    org = Org(name=name, features=parse_features(features or []))
    session.add(org)
    session.flush()
    for position, status in enumerate(DEFAULT_STATUSES):
        session.add(ContactStatus(org_id=org.id, name=status, position=position))
    session.flush()
    return org


def get_org(session: Session, org_id: str | uuid.UUID) -> Org:
    try:
        parsed = uuid.UUID(str(org_id))
    except ValueError:
        raise NotFound("Org not found.") from None
    org = session.get(Org, parsed)
    if org is None:
        raise NotFound("Org not found.")
    return org


def set_features(session: Session, org: Org, features: list[str]) -> Org:
    org.features = parse_features(features)
    session.flush()
    return org


def normalise_user_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"Invalid email address: {exc}", field="email") from None


def parse_role(role: str) -> Role:
    try:
        return Role(role.strip().upper())
    except ValueError:
        raise ValidationFailed(
            f"Unknown role {role!r}; use ADMIN, MANAGER or USER.", field="role"
        ) from None


def create_user(
    session: Session, org: Org, email: str, password: str, role: str, *, actor: audit.Actor
) -> User:
    email = normalise_user_email(email)
    parsed_role = parse_role(role)
    check_new_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("A user with this email already exists.", code="email_taken")
    user = User(
        org_id=org.id, email=email, password_hash=hash_password(password), role=parsed_role.value
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor, "user.created", target=f"user {email}", details={"role": user.role}
    )
    return user


def list_users(session: Session, org: Org) -> list[User]:
    return list(
        session.scalars(select(User).where(User.org_id == org.id).order_by(User.created_at))
    )


def get_user_by_email(session: Session, email: str) -> User:
    user = session.scalars(select(User).where(User.email == normalise_user_email(email))).first()
    if user is None:
        raise NotFound("User not found.")
    return user


def get_org_user(session: Session, org_id: uuid.UUID, user_id: str | uuid.UUID) -> User:
    """A user of this org; another org's user is not found, like one that does not exist."""
    parsed = parse_id(user_id)
    user = session.get(User, parsed) if parsed else None
    if user is None or user.org_id != org_id:
        raise NotFound("User not found.")
    return user


def update_user(
    session: Session,
    actor: audit.Actor,
    user: User,
    *,
    role: Role | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's role or active flag; nobody demotes or deactivates themselves. A new
    role or either change of the active flag signs the user out everywhere (a reactivated
    user logs in again)."""
    if user.id == actor.user_id and (
        (role is not None and role.value != user.role) or is_active is False
    ):
        raise Conflict("You cannot demote or deactivate yourself.", code="self_change")
    before = audit.snapshot(user)
    if (role is not None and role.value != user.role) or (
        is_active is not None and is_active != user.is_active
    ):
        revoke_sessions(session, user)
    if role is not None:
        user.role = role.value
    if is_active is not None:
        user.is_active = is_active
    session.flush()
    audit.record_user_change(session, actor, before, user)
    return user
