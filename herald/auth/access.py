"""Who may do what: per capability, the licence feature and the roles it needs (CONTRACT.md,
"Roles and licence"). The API, the pages and the sidebar all ask this one rule."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from herald.errors import Forbidden
from herald.orgs.models import Role


class Capability(enum.Enum):
    MARKETING_READ = "marketing_read"
    MARKETING_WRITE = "marketing_write"
    CRM_WRITE = "crm_write"
    EMAIL_STATUS_RESET = "email_status_reset"
    BOUNCE_RAW = "bounce_raw"
    SETTINGS = "settings"


@dataclass(frozen=True)
class Need:
    """What a capability needs; ``action`` names it in a refusal ("Changing contacts ...")."""

    action: str
    roles: frozenset[Role]
    feature: str | None = None


NEEDS: dict[Capability, Need] = {
    Capability.MARKETING_READ: Need(
        "The Marketing module", frozenset({Role.ADMIN, Role.MANAGER}), feature="marketing"
    ),
    Capability.MARKETING_WRITE: Need(
        "Changing campaigns", frozenset({Role.ADMIN}), feature="marketing"
    ),
    Capability.CRM_WRITE: Need("Changing contacts", frozenset({Role.ADMIN, Role.MANAGER})),
    # emailStatus is Herald's record of bounces and complaints: only an ADMIN overrides it
    Capability.EMAIL_STATUS_RESET: Need(
        "Resetting a contact's email status", frozenset({Role.ADMIN})
    ),
    # a raw report holds whatever the bouncing server quoted of the message and its headers
    Capability.BOUNCE_RAW: Need(
        "Reading a raw bounce report", frozenset({Role.ADMIN}), feature="marketing"
    ),
    Capability.SETTINGS: Need("Managing email settings and users", frozenset({Role.ADMIN})),
}


class Caller(Protocol):
    """What the rule looks at: a role and the org's licence features (a Principal)."""

    @property
    def role(self) -> Role: ...

    @property
    def features(self) -> frozenset[str]: ...


def refusal(caller: Caller, capability: Capability) -> Forbidden | None:
    """None when the caller may; otherwise the 403 naming what is missing (the licence
    feature first, then the role)."""
    need = NEEDS[capability]
    if need.feature is not None and need.feature not in caller.features:
        return Forbidden(
            f"Your organisation's licence does not include the '{need.feature}' feature.",
            code="feature_required",
            details={"feature": need.feature},
        )
    if caller.role not in need.roles:
        names = sorted(role.value for role in need.roles)
        return Forbidden(
            f"{need.action} needs the {' or '.join(names)} role.",
            code="role_required",
            details={"requiredRoles": names},
        )
    return None


def allows(caller: Caller, capability: Capability) -> bool:
    return refusal(caller, capability) is None


def enforce(caller: Caller, capability: Capability) -> None:
    """Raise the refusal, if there is one."""
    denied = refusal(caller, capability)
    if denied is not None:
        raise denied
