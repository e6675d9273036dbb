"""The one typed settings object; every other module reads configuration from here."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.mail import egress

# Only for `herald dev` and tests: `serve`, `worker` and `inbound` refuse it outside dev mode.
DEV_SECRET_KEY = "herald-dev-secret-key-change-me-in-production"  # noqa: S105
# HS256 tokens and the HKDF-derived encryption keys want at least 256 bits of key.
MIN_SECRET_KEY_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./data/herald.db",
        description="SQLAlchemy URL; postgresql+psycopg://... for PostgreSQL.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public URL used in tracking and unsubscribe links.",
    )
    secret_key: str = Field(
        default=DEV_SECRET_KEY,
        description="Signs tokens and encrypts SMTP passwords. Set it in production.",
    )
    env: str = Field(default="production", description="'dev' enables the demo helpers.")
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=False, description="Log JSON lines instead of console text.")

    jwt_issuer: str = "herald"
    jwt_audience: str = "herald-api"
    access_token_seconds: int = 900
    refresh_token_days: int = 30

    # per account from one client address (the contract's 429 on the 6th failure)
    login_account_max_failures: int = 5
    # per account from every address together: high, so strangers cannot lock the owner out
    login_account_total_max_failures: int = 100
    login_address_max_failures: int = 50
    login_window_seconds: int = 900

    lease_seconds: float = 60
    retry_base_seconds: float = 60
    retry_window_seconds: float = 14400
    autopause_failures: int = Field(
        default=50,
        ge=1,
        description="Sends in a row that fail for a reason not their recipient's (connection "
        "refused or lost, TLS failure, timeout) before a campaign pauses itself.",
    )
    schedule_grace_seconds: float = Field(
        default=3600,
        ge=0,
        description="A scheduled campaign found later than this after its time (Herald was "
        "down) goes back to DRAFT instead of being sent.",
    )

    smtp_verify_tls: bool = Field(
        default=True,
        description="Verify SMTP servers' TLS certificates (turn off only for a private relay "
        "with a self-signed certificate).",
    )
    smtp_allowed_networks: str = Field(
        default="",
        description="Non-public networks (comma-separated CIDRs, e.g. 127.0.0.0/8,10.1.0.0/16) "
        "that orgs' SMTP hosts may point to; by default only public addresses are allowed.",
    )
    smtp_test_messages_per_minute: int = Field(
        default=10, description="Test messages (settings and campaign tests) one org may send."
    )
    open_flush_seconds: float = Field(
        default=1.0, description="How often buffered tracking hits (opens, clicks) are written."
    )
    apple_proxy_networks: str = Field(
        default="17.0.0.0/8",
        description="Networks (comma-separated CIDRs) of Apple Mail Privacy Protection's "
        "proxies: a hit from one of them with the bare agent `Mozilla/5.0` is a machine hit. "
        "The default is Apple's own 17.0.0.0/8; add the ranges Apple publishes as they change.",
    )

    bounce_poll_seconds: float = Field(
        default=60,
        gt=0,
        description="How often the workers poll each org's bounce mailbox (IMAP).",
    )
    sns_cert_hosts: str = Field(
        default="sns.*.amazonaws.com",
        description="Hosts (comma-separated host[:port] patterns, * within one label) that "
        "Amazon SNS signing certificates and subscription confirmations are fetched from, "
        "over https only.",
    )

    forwarded_allow_ips: str = Field(
        default="",
        description="Reverse proxies (comma-separated addresses) whose X-Forwarded-For and "
        "X-Forwarded-Proto `herald serve` trusts, so login throttling sees each client.",
    )

    max_upload_bytes: int = Field(
        default=32 * 1024 * 1024,
        description="Largest CSV import accepted, in bytes (100,000 contacts take about 10 MB).",
    )

    dev_dir: Path = Field(
        default=Path("data"),
        description="Where `herald dev` keeps the local inbox and the demo login.",
    )

    @field_validator("smtp_allowed_networks", "apple_proxy_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        egress.parse_networks(value)  # a bad entry stops the start with its name
        return value

    @field_validator("sns_cert_hosts")
    @classmethod
    def _sns_hosts_parse(cls, value: str) -> str:
        for part in value.split(","):
            host, colon, port = part.strip().rpartition(":")
            if part.strip() and colon and not (host and port.isdigit()):
                raise ValueError(f"{part.strip()!r} is not a host[:port] pattern")
        return value

    @property
    def smtp_networks(self) -> tuple[egress.Network, ...]:
        return egress.parse_networks(self.smtp_allowed_networks)

    @property
    def apple_networks(self) -> tuple[egress.Network, ...]:
        return egress.parse_networks(self.apple_proxy_networks)

    @property
    def sns_cert_host_patterns(self) -> tuple[tuple[str, int], ...]:
        """``HERALD_SNS_CERT_HOSTS`` as (host pattern, port) pairs; the port is 443 unless given."""
        patterns: list[tuple[str, int]] = []
        for part in self.sns_cert_hosts.split(","):
            host, _, port = part.strip().lower().rpartition(":")
            if not host:  # no port given
                host, port = port, "443"
            if host and port.isdigit():
                patterns.append((host, int(port)))
        return tuple(patterns)

    def secret_key_problem(self) -> str | None:
        """Why the secret key must not be used (too short), or None."""
        if len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            return (
                f"HERALD_SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes. Set it to a "
                "long random value (e.g. `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)."
            )
        return None

    @property
    def mailbox_dir(self) -> Path:
        return self.dev_dir / "mailbox"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[-1]
        if not path or path == ":memory:":
            return None
        return Path(path)


@functools.cache
def get_settings() -> Settings:
    return Settings()
