"""The catcher's store: what was received is listed newest first and read back part by part."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from herald.dev.catcher import MailCatcher
from herald.dev.mailbox import Mailbox
from tests.conftest import free_port


def message(subject: str, html: str | None = "<p>Hi</p>") -> bytes:
    msg = EmailMessage()
    msg["From"] = "News <news@example.com>"
    msg["To"] = "zoë@example.com"
    msg["Subject"] = subject
    msg.set_content("Plain words")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def test_saved_messages_list_newest_first_and_read_back(tmp_path):
    box = Mailbox(tmp_path / "mailbox")
    assert box.summaries() == []
    first = box.save(message("First"))
    second = box.save(message("Ünïcode ✓ second", html=None))
    assert [s.subject for s in box.summaries()] == ["Ünïcode ✓ second", "First"]

    stored = box.get(first)
    assert stored is not None
    assert stored.summary.sender == "News <news@example.com>"
    assert stored.text is not None and stored.text.strip() == "Plain words"
    assert stored.html is not None and "<p>Hi</p>" in stored.html
    assert ("Subject", "First") in stored.headers

    no_html = box.get(second)
    assert no_html is not None and no_html.html is None


def test_ids_name_only_files_of_the_mailbox(tmp_path):
    box = Mailbox(tmp_path / "mailbox")
    box.save(message("Kept"))
    (tmp_path / "secret.eml").write_text("Subject: not yours\n\nx")
    for bad in ("../secret", "..%2Fsecret", "/etc/passwd", "", "1" * 19 + "-zzzzzzzz"):
        assert box.get(bad) is None
    assert box.clear() == 1
    assert box.summaries() == []
    assert (tmp_path / "secret.eml").exists()


def test_the_catcher_keeps_what_an_smtp_client_sends(tmp_path):
    box = Mailbox(tmp_path / "mailbox")
    port = free_port()
    catcher = MailCatcher(box, port=port)
    catcher.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            refused = client.sendmail(
                "news@example.com", ["a@example.com", "b@example.com"], message("Over SMTP")
            )
        assert refused == {}
    finally:
        catcher.stop()
    summaries = box.summaries()
    assert [s.subject for s in summaries] == ["Over SMTP"]  # one file for two recipients
