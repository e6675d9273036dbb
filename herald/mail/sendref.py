"""Naming a send inside the mail it becomes, so that a bounce or a complaint finds it again:
the VERP tag of the envelope sender (``local+TAG@domain``) and the ``Message-ID``.

Both carry the send's id with an HMAC keyed from HERALD_SECRET_KEY (see ``SendRefKeys``),
so nobody can forge a report about a send they did not receive, nor guess another send's
reference. Tags use lower-case base32: some mail systems fold the case of local parts.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import secrets
from dataclasses import dataclass

from herald.secretbox import derive_key

# The HMAC's length in the tag: 64 bits, so a forged tag is right once in 2^64 tries.
TAG_MAC_BYTES = 8
# A send id fits in 8 bytes (BIGINT); with the MAC, 16 bytes are 26 base32 characters.
MAX_TAG_LENGTH = 26
# RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
MAX_LOCAL_PART = 64
# The bounce address's local part must leave room for "+" and the longest tag.
MAX_BOUNCE_LOCAL_PART = MAX_LOCAL_PART - 1 - MAX_TAG_LENGTH
TAG_SEPARATOR = "+"

_MESSAGE_ID_MAC_BYTES = 10
_MESSAGE_ID_NONCE_BYTES = 4
_MESSAGE_ID_PREFIX = "h"
# 8-byte id + nonce + MAC: 22 bytes, 36 base32 characters after the prefix.
_MESSAGE_ID_PAYLOAD = 8 + _MESSAGE_ID_NONCE_BYTES + _MESSAGE_ID_MAC_BYTES


@dataclass(frozen=True)
class SendRefKeys:
    """The two HMAC keys, derived by the caller from HERALD_SECRET_KEY, one per purpose."""

    tag: bytes
    message_id: bytes

    @classmethod
    def from_secret(cls, secret_key: str) -> SendRefKeys:
        return _keys(secret_key)


@functools.lru_cache(maxsize=4)
def _keys(secret_key: str) -> SendRefKeys:
    return SendRefKeys(
        tag=derive_key(secret_key, "herald.verp-tag"),
        message_id=derive_key(secret_key, "herald.message-id"),
    )


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    """The bytes of a canonical encoding (one whose unused last bits are zero), or None:
    each reference has exactly one spelling, case aside."""
    if not text or not text.isascii() or not text.isalnum():
        return None
    try:
        data = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return data if _b32(data) == text.lower() else None


def _mac(key: bytes, purpose: bytes, data: bytes, length: int) -> bytes:
    return hmac.digest(key, purpose + data, "sha256")[:length]  # one-shot: no HMAC object


def _id_bytes(send_id: int) -> bytes:
    if not 0 < send_id < 2**63:
        raise ValueError("a send id is a positive 63-bit integer")
    return send_id.to_bytes((send_id.bit_length() + 7) // 8, "big")


# --- the VERP tag -----------------------------------------------------------------------


def make_tag(key: bytes, send_id: int) -> str:
    """The tag naming ``send_id``: at most MAX_TAG_LENGTH lower-case base32 characters."""
    data = _id_bytes(send_id)
    return _b32(data + _mac(key, b"verp:", data, TAG_MAC_BYTES))


def read_tag(key: bytes, tag: str) -> int | None:
    """The send id a tag names, or None when it is not a tag Herald made with this key
    (malformed, forged, damaged). Case-insensitive."""
    data = _unb32(tag)
    if data is None or not TAG_MAC_BYTES < len(data) <= TAG_MAC_BYTES + 8:
        return None
    id_part, mac = data[:-TAG_MAC_BYTES], data[-TAG_MAC_BYTES:]
    if id_part[0] == 0:  # not the minimal encoding: not one of ours
        return None
    if not hmac.compare_digest(mac, _mac(key, b"verp:", id_part, TAG_MAC_BYTES)):
        return None
    return int.from_bytes(id_part, "big")


def return_path(key: bytes, bounce_address: str, send_id: int) -> str:
    """``local+TAG@domain`` for a bounce address ``local@domain`` (checked at save by
    ``bounce_address_problem``, so the local part stays within 64 octets)."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}{TAG_SEPARATOR}{make_tag(key, send_id)}@{domain}"


@dataclass(frozen=True)
class ReturnPath:
    """An address a report was sent to: the bounce address it belongs to, and its tag."""

    bounce_address: str  # lower-cased
    tag: str | None


def split_return_path(address: str) -> ReturnPath:
    """``local+TAG@domain`` -> (``local@domain``, TAG); an address without a tag -> (it, None).

    Bounce addresses have no "+" of their own (``bounce_address_problem``), so the first one
    starts the tag.
    """
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return ReturnPath(address, None)
    base, plus, tag = local.partition(TAG_SEPARATOR)
    return ReturnPath(f"{base}@{domain}", tag if plus else None)


def bounce_address_problem(address: str) -> str | None:
    """Why ``address`` cannot be a bounce address (a sentence), or None.

    Its local part must leave room for "+" and the longest tag within 64 octets, and have
    no "+" itself (the tag starts at the first one).
    """
    local, _, _domain = address.rpartition("@")
    if TAG_SEPARATOR in local:
        return 'must not contain "+" before the @: Herald adds "+" and a tag there'
    if len(local.encode("utf-8")) > MAX_BOUNCE_LOCAL_PART:
        return (
            f"the part before the @ must be at most {MAX_BOUNCE_LOCAL_PART} characters, "
            f"so that with the tag Herald adds it stays within {MAX_LOCAL_PART}"
        )
    return None


# --- the Message-ID -----------------------------------------------------------------------


def make_message_id(key: bytes, send_id: int, domain: str) -> str:
    """A new ``<...@domain>`` naming ``send_id``; unique per message (a random nonce), so a
    resend of the same send gets another one."""
    data = send_id.to_bytes(8, "big") + secrets.token_bytes(_MESSAGE_ID_NONCE_BYTES)
    mac = _mac(key, b"msgid:", data, _MESSAGE_ID_MAC_BYTES)
    return f"<{_MESSAGE_ID_PREFIX}{_b32(data + mac)}@{domain}>"


def read_message_id(key: bytes, value: str) -> int | None:
    """The send id a Message-ID of Herald's names, or None (someone else's, or forged)."""
    local = value.strip().strip("<>").partition("@")[0]
    if not local.startswith(_MESSAGE_ID_PREFIX):
        return None
    data = _unb32(local[len(_MESSAGE_ID_PREFIX) :])
    if data is None or len(data) != _MESSAGE_ID_PAYLOAD:
        return None
    body, mac = data[:-_MESSAGE_ID_MAC_BYTES], data[-_MESSAGE_ID_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, b"msgid:", body, _MESSAGE_ID_MAC_BYTES)):
        return None
    send_id = int.from_bytes(body[:8], "big")
    return send_id if send_id > 0 else None
