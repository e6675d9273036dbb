"""Amazon SNS messages (how SES reports bounces and complaints): the signature check, the
signing certificates (fetched over https only from HERALD_SNS_CERT_HOSTS, cached) and the
subscription confirmation.

The signature is verified by the ``cryptography`` package over the canonical string SNS
documents ("Verifying the signatures of Amazon SNS messages"): SignatureVersion 1 is
SHA1withRSA, 2 is SHA256withRSA.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import fnmatch
import json
import re
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from herald.bounces.webhooks.events import Unauthenticated
from herald.log import get_logger

log = get_logger("herald.bounces.webhooks")

NOTIFICATION = "Notification"
SUBSCRIBE = "SubscriptionConfirmation"
UNSUBSCRIBE = "UnsubscribeConfirmation"

# The fields signed, in this order, per message type.
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIBE: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    UNSUBSCRIBE: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_OPTIONAL = frozenset({"Subject"})
FETCH_TIMEOUT = 10.0
MAX_CERTIFICATE_BYTES = 64 * 1024
CACHED_CERTIFICATES = 64
FAILED_FETCH_KEPT_SECONDS = 60.0  # a URL that failed is not fetched again meanwhile


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message: str
    message_id: str
    topic_arn: str
    subscribe_url: str | None


def parse(body: bytes) -> dict[str, Any]:
    """The JSON object of an SNS POST; Unauthenticated when it is not one (nothing in it
    can be trusted before its signature is checked)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unauthenticated("not an SNS message (not JSON)") from None
    if not isinstance(data, dict):
        raise Unauthenticated("not an SNS message")
    return data


def string_to_sign(data: dict[str, Any]) -> bytes:
    """The canonical string: ``Name\\nvalue\\n`` for each signed field of the type, in order."""
    fields = _SIGNED_FIELDS.get(str(data.get("Type")))
    if fields is None:
        raise Unauthenticated("unknown SNS message type")
    parts: list[str] = []
    for name in fields:
        value = data.get(name)
        if value is None and name in _OPTIONAL:
            continue
        if not isinstance(value, str):
            raise Unauthenticated(f"SNS field {name} missing")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


# Under amazonaws.com a "*" stands for a region ("us-east-1", "us-gov-west-1"): any label
# would let in S3's virtual hosts (sns.s3.amazonaws.com is a bucket named "sns").
_AWS = ".amazonaws.com"
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


def host_allowed(url: str, patterns: tuple[tuple[str, int], ...]) -> bool:
    """An https URL whose host (and port, 443 unless a pattern names one) matches one of
    ``patterns``; ``*`` stands for one DNS label (never a dot), a region's name under
    amazonaws.com."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or parts.username or parts.password:
        return False
    labels = host.split(".")
    for pattern, pattern_port in patterns:
        wanted = pattern.split(".")
        if port != pattern_port or len(wanted) != len(labels):
            continue
        wildcard = _REGION if pattern.endswith(_AWS) else _LABEL
        if all(
            wildcard.fullmatch(got) if want == "*" else fnmatch.fnmatchcase(got, want)
            for got, want in zip(labels, wanted, strict=True)
        ):
            return True
    return False


_LABEL = re.compile(r"[a-z0-9-]+")


class SnsVerifier:
    """Checks SNS messages; one per process, its certificate cache shared by all requests."""

    def __init__(
        self,
        patterns: tuple[tuple[str, int], ...],
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.patterns = patterns
        self.fetch_timeout = fetch_timeout
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._failed: OrderedDict[str, float] = OrderedDict()  # URL -> when its fetch failed
        self._fetching: dict[str, asyncio.Future[rsa.RSAPublicKey]] = {}
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # The system's trust store (OpenSSL honours SSL_CERT_FILE), not certifi's; no
            # redirects, so a response can never lead to a host outside the rule.
            self._client = httpx.AsyncClient(
                verify=ssl.create_default_context(),
                timeout=self.fetch_timeout,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, data: dict[str, Any]) -> SnsMessage:
        """The message once its signature checks out; Unauthenticated otherwise."""
        algorithm = _HASHES.get(str(data.get("SignatureVersion")))
        if algorithm is None:
            raise Unauthenticated("unsupported SNS signature version")
        signed = string_to_sign(data)
        try:
            signature = base64.b64decode(str(data.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise Unauthenticated("SNS signature is not base64") from None
        key = await self.public_key(str(data.get("SigningCertURL", "")))
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Unauthenticated("SNS signature does not match") from None
        subscribe_url = data.get("SubscribeURL")
        return SnsMessage(
            type=str(data["Type"]),
            message=str(data["Message"]),
            message_id=str(data["MessageId"]),
            topic_arn=str(data["TopicArn"]),
            subscribe_url=subscribe_url if isinstance(subscribe_url, str) else None,
        )

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        """The signing certificate's key, from the cache or fetched once (concurrent calls
        for one URL share the fetch)."""
        if not host_allowed(url, self.patterns):
            raise Unauthenticated("SigningCertURL is not an allowed https host")
        cached = self._keys.get(url)
        if cached is not None:
            self._keys.move_to_end(url)
            return cached
        failed_at = self._failed.get(url)
        if failed_at is not None and time.monotonic() - failed_at < FAILED_FETCH_KEPT_SECONDS:
            raise Unauthenticated("the signing certificate could not be fetched lately")
        pending = self._fetching.get(url)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch_key(url))
            self._fetching[url] = pending
            pending.add_done_callback(lambda done: self._fetched(url, done))
        return await asyncio.shield(pending)

    def _fetched(self, url: str, done: asyncio.Future[rsa.RSAPublicKey]) -> None:
        self._fetching.pop(url, None)
        if done.cancelled() or done.exception() is not None:
            self._failed[url] = time.monotonic()
            while len(self._failed) > CACHED_CERTIFICATES:
                self._failed.popitem(last=False)

    async def _fetch_key(self, url: str) -> rsa.RSAPublicKey:
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as exc:
            log.warning("webhooks.sns_certificate_unavailable", error=type(exc).__name__)
            raise Unauthenticated("the signing certificate could not be fetched") from None
        if response.status_code != 200 or len(response.content) > MAX_CERTIFICATE_BYTES:
            raise Unauthenticated("the signing certificate could not be fetched")
        try:
            certificate = x509.load_pem_x509_certificate(response.content)
        except ValueError:
            raise Unauthenticated("the signing certificate is not a PEM certificate") from None
        now = dt.datetime.now(dt.UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Unauthenticated("the signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Unauthenticated("the signing certificate's key is not RSA")
        self._keys[url] = key
        while len(self._keys) > CACHED_CERTIFICATES:
            self._keys.popitem(last=False)
        log.info("webhooks.sns_certificate_fetched", host=urlsplit(url).hostname)
        return key

    async def confirm_subscription(self, message: SnsMessage) -> None:
        """Visit SubscribeURL (same host rule) so that SNS starts delivering."""
        url = message.subscribe_url or ""
        if not host_allowed(url, self.patterns):
            raise Unauthenticated("SubscribeURL is not an allowed https host")
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as exc:
            log.warning("webhooks.sns_subscription_failed", error=type(exc).__name__)
            raise SubscriptionFailed() from None
        if response.status_code != 200:
            log.warning("webhooks.sns_subscription_failed", status=response.status_code)
            raise SubscriptionFailed()
        log.info("webhooks.sns_subscription_confirmed", topic_arn=message.topic_arn)


class SubscriptionFailed(Exception):
    """SNS did not accept the confirmation: answer an error, so SNS tries again."""
