"""The send references in Herald's mail (herald.mail.sendref): the VERP tag and the
Message-ID name their send, cannot be forged, and keep the return path within 64 octets."""

from __future__ import annotations

import pytest

from herald.mail.sendref import (
    MAX_BOUNCE_LOCAL_PART,
    MAX_LOCAL_PART,
    SendRefKeys,
    bounce_address_problem,
    make_message_id,
    make_tag,
    read_message_id,
    read_tag,
    return_path,
    split_return_path,
)

KEYS = SendRefKeys.from_secret("a-secret-key-of-more-than-thirty-two-bytes")
OTHER = SendRefKeys.from_secret("another-secret-key-of-thirty-two-bytes!!")
IDS = [1, 7, 255, 256, 65_537, 2**31 + 5, 2**63 - 1]


@pytest.mark.parametrize("send_id", IDS)
def test_a_tag_names_its_send_and_only_with_the_right_key(send_id):
    tag = make_tag(KEYS.tag, send_id)
    assert read_tag(KEYS.tag, tag) == send_id
    assert read_tag(KEYS.tag, tag.upper()) == send_id  # some servers fold the case
    assert read_tag(OTHER.tag, tag) is None
    assert tag.isalnum() and tag == tag.lower()


def test_a_changed_character_anywhere_in_a_tag_is_refused():
    tag = make_tag(KEYS.tag, 123_456)
    for i in range(len(tag)):
        changed = tag[:i] + ("a" if tag[i] != "a" else "b") + tag[i + 1 :]
        assert read_tag(KEYS.tag, changed) is None, changed


@pytest.mark.parametrize("junk", ["", "x", "0" * 30, "!!!!", "é" * 20, "a" * 200])
def test_junk_is_no_tag(junk):
    assert read_tag(KEYS.tag, junk) is None


def test_the_longest_allowed_bounce_address_keeps_the_local_part_within_64_octets():
    local = "b" * MAX_BOUNCE_LOCAL_PART
    address = f"{local}@bounces.example.com"
    assert bounce_address_problem(address) is None
    path = return_path(KEYS.tag, address, 2**63 - 1)  # the largest send id
    assert len(path.partition("@")[0].encode()) <= MAX_LOCAL_PART
    assert split_return_path(path).bounce_address == address
    assert read_tag(KEYS.tag, split_return_path(path).tag or "") == 2**63 - 1
    assert bounce_address_problem("b" + address) is not None


def test_a_bounce_address_may_not_contain_plus():
    assert "+" in (bounce_address_problem("bounces+x@example.com") or "")


@pytest.mark.parametrize("send_id", IDS)
def test_a_message_id_names_its_send_is_unique_and_cannot_be_forged(send_id):
    first = make_message_id(KEYS.message_id, send_id, "news.example.com")
    second = make_message_id(KEYS.message_id, send_id, "news.example.com")
    assert first != second  # a resend is another message
    assert first.startswith("<") and first.endswith("@news.example.com>")
    assert read_message_id(KEYS.message_id, first) == send_id
    assert read_message_id(KEYS.message_id, first.strip("<>")) == send_id
    assert read_message_id(OTHER.message_id, first) is None
    assert read_message_id(KEYS.tag, first) is None  # each purpose has its own key


def test_someone_elses_message_id_names_no_send():
    for value in ("<CAF=abc@mail.gmail.com>", "<h@x>", "", "<hzzzz@example.com>"):
        assert read_message_id(KEYS.message_id, value) is None
