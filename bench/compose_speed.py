"""How fast a compiled campaign renders messages: `python bench/compose_speed.py [N]`.

Also times email.message.EmailMessage building the same 500 messages, for comparison.
"""

from __future__ import annotations

import secrets
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from herald.mail.compose import CampaignMessage, Recipient

STYLE = """<style>
body { margin: 0; padding: 0; background: #f4f4f7; font-family: Helvetica, Arial, sans-serif; }
.wrapper { width: 100%; background: #f4f4f7; padding: 24px 0; }
.card { max-width: 600px; margin: 0 auto; background: #ffffff; border-radius: 6px; }
h1 { font-size: 24px; color: #1a1a2e; margin: 0 0 16px; }
p { font-size: 16px; line-height: 24px; color: #333333; margin: 0 0 16px; }
.button { display: inline-block; padding: 12px 24px; background: #3869d4; color: #ffffff; }
.muted { color: #8a8a9a; font-size: 13px; }
@media (max-width: 600px) { .card { width: 100% !important; } }
</style>"""
PARAGRAPH = (
    "<p>Our spring collection has arrived, and as a valued customer at {{companyName|your "
    "company}} you get early access before anyone else. Prices start at 9,99 € and every "
    "order ships free this week.</p>\n"
)
HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Spring news</title>{STYLE}</head>
<body><div class="wrapper"><div class="card">
<h1>Hello {{{{ firstName | there }}}},</h1>
{PARAGRAPH * 10}
<p><a class="button" href="https://shop.example/spring?utm_source=herald">See the collection</a></p>
<p class="muted">You receive this because {{{{email}}}} is subscribed to Acme news.</p>
</div></div></body></html>"""
FIRST = ["Zoë", "José", "Łukasz", "Søren", "محمد", "李", "Ana", "Chloé", "Jürgen", "Émile"]
LAST = [
    "Müller",
    "García",
    "Wójcik",
    "Ødegård",
    "علي",
    "小龙",
    "Silva",
    "Dubois",
    "Ñúñez",
    "Brontë",
]


def main(count: int, *, stdlib: bool = True) -> None:
    started = time.perf_counter()
    campaign = CampaignMessage(
        subject="{{firstName|Hello}}, the spring collection is here — 20 % off 🌷",
        html_body=HTML,
        text_body="",
        from_name="Acme Café",
        from_email="news@acme.example",
        base_url="https://herald.example",
    )
    compiled = time.perf_counter() - started
    recipients = [
        Recipient(
            email=f"person{i}@example.com",
            first_name=FIRST[i % len(FIRST)],
            last_name=LAST[i * 7 % len(LAST)],
            company_name=f"Société {i}",
            token=secrets.token_hex(32),
        )
        for i in range(count)
    ]
    render = campaign.render
    started, cpu_started = time.perf_counter(), time.process_time()
    size = 0
    for recipient in recipients:
        size += len(render(recipient))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"HTML template: {len(HTML)} bytes; compile: {compiled * 1000:.1f} ms")
    print(f"{count} messages, {size / count / 1024:.1f} KB each, in {elapsed:.2f} s")
    print(f"{elapsed / count * 1e6:.1f} µs/message, {count / elapsed:,.0f} messages/s (one core)")
    print(f"CPU time: {cpu / count * 1e6:.1f} µs/message (less disturbed by other processes)")
    if stdlib:
        inputs = [stdlib_inputs(campaign.render(r)) for r in recipients[:500]]
        started = time.perf_counter()
        for headers, text, body in inputs:
            build_with_stdlib(headers, text, body)
        per_message = (time.perf_counter() - started) / len(inputs)
        print(f"email.message.EmailMessage, same content: {per_message * 1e6:.0f} µs/message")


def stdlib_inputs(raw: bytes) -> tuple[dict[str, str], str, str]:
    ours = BytesParser(policy=policy.default).parsebytes(raw)
    headers = {name: str(value) for name, value in ours.items() if name != "Content-Type"}
    text, body = (part.get_content() for part in ours.iter_parts())
    return headers, text, body


def build_with_stdlib(headers: dict[str, str], text: str, body: str) -> bytes:
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    return message.as_bytes(policy=policy.SMTP)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
