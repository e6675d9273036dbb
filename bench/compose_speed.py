"""How fast a compiled campaign renders messages: `python bench/compose_speed.py [N]`.

The campaign is a newsletter with a dozen links. By default it is composed as Herald sends
it (pixel, tracked links, trap link), and as the standard library's EmailMessage would
build the same 500 messages, for comparison.

`--baseline DIR` also times, in the same run and in alternating rounds, the code of another
checkout (e.g. `git worktree add /tmp/herald-main main`) composing the same campaign in a
process of its own, and the current code with links as written (trackClicks off), and
prints each one's CPU time per message and the ratio of the tracked one's speed to the
baseline's. CPU time per message is less disturbed by other processes than wall time.

    .venv/bin/python bench/compose_speed.py 20000
    .venv/bin/python bench/compose_speed.py 20000 --baseline /work/main --rounds 5
"""

from __future__ import annotations

import argparse
import inspect
import os
import secrets
import statistics
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

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
    'order ships free this week: <a href="https://shop.example/item/{n}?utm_source=herald">'
    "see item {n}</a>.</p>\n"
)
NAV = " · ".join(
    f'<a href="https://shop.example/{section}?utm_source=herald">{section}</a>'
    for section in ("women", "men", "kids", "sale")
)
HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Spring news</title>{STYLE}</head>
<body><div class="wrapper"><div class="card">
<p class="muted">{NAV}</p>
<h1>Hello {{{{ firstName | there }}}},</h1>
{"".join(PARAGRAPH.replace("{n}", str(n)) for n in range(1, 11))}
<p><a class="button" href="https://shop.example/spring?utm_source=herald&amp;who={{{{email}}}}">
See the collection</a></p>
<p class="muted">You receive this because {{{{email}}}} is subscribed to Acme news.
<a href="mailto:help@acme.example">Write to us</a>.</p>
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


def compile_campaign(**tracking: bool):  # type: ignore[no-untyped-def]
    """The campaign compiled by whatever ``herald`` is imported (a baseline checkout's code
    may not know the tracking settings: they are passed only when asked for)."""
    from herald.mail.compose import CampaignMessage

    return CampaignMessage(
        subject="{{firstName|Hello}}, the spring collection is here — 20 % off 🌷",
        html_body=HTML,
        text_body="",
        from_name="Acme Café",
        from_email="news@acme.example",
        base_url="https://herald.example",
        **tracking,
    )


def recipients(count: int):  # type: ignore[no-untyped-def]
    from herald.mail.compose import Recipient

    return [
        Recipient(
            email=f"person{i}@example.com",
            first_name=FIRST[i % len(FIRST)],
            last_name=LAST[i * 7 % len(LAST)],
            company_name=f"Société {i}",
            token=secrets.token_hex(32),
        )
        for i in range(count)
    ]


def cpu_per_message(campaign, people) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """(CPU µs per message, wall µs per message, bytes in all) rendering for ``people``."""
    render = campaign.render
    started, cpu_started = time.perf_counter(), time.process_time()
    size = 0
    for person in people:
        size += len(render(person))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return cpu / len(people) * 1e6, elapsed / len(people) * 1e6, size


def report(count: int, *, stdlib: bool = True) -> None:
    started = time.perf_counter()
    campaign = compile_campaign()
    compiled = time.perf_counter() - started
    people = recipients(count)
    cpu, wall, size = cpu_per_message(campaign, people)
    links = len(getattr(campaign, "links", ()))
    print(
        f"HTML template: {len(HTML)} bytes, {links} tracked links; compile {compiled * 1e3:.1f} ms"
    )
    print(f"{count} messages, {size / count / 1024:.1f} KB each")
    print(f"{wall:.1f} µs/message, {1e6 / wall:,.0f} messages/s (one core)")
    print(f"CPU time: {cpu:.1f} µs/message (less disturbed by other processes)")
    if stdlib:
        inputs = [stdlib_inputs(campaign.render(r)) for r in people[:500]]
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


def one_measure(count: int, links_as_written: bool) -> float:
    """CPU µs per message of the code imported, as Herald sends it (or links as written)."""
    from herald.mail.compose import CampaignMessage

    knows_tracking = "track_clicks" in inspect.signature(CampaignMessage).parameters
    tracking = {"track_clicks": False} if links_as_written and knows_tracking else {}
    return cpu_per_message(compile_campaign(**tracking), recipients(count))[0]


def baseline_measure(directory: Path, count: int) -> float:
    """The same measure by the code of ``directory``, in a process of its own."""
    # nothing written into that checkout (no bytecode caches)
    env = {**os.environ, "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, __file__, str(count), "--measure"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    where, figure = out.strip().splitlines()[-2:]
    if not where.startswith(str(directory)):
        sys.exit(f"the baseline process imported herald from {where}, not {directory}")
    return float(figure)


def compare(count: int, baseline: Path, rounds: int) -> None:
    figures: dict[str, list[float]] = {"baseline": [], "as written": [], "tracked": []}
    for _ in range(rounds):
        figures["baseline"].append(baseline_measure(baseline, count))
        figures["as written"].append(one_measure(count, links_as_written=True))
        figures["tracked"].append(one_measure(count, links_as_written=False))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    print(f"\n{count} messages x {rounds} rounds, CPU µs per message (median; every round):")
    print(f"  baseline ({baseline}): {medians['baseline']:.1f}  {figures['baseline']}")
    print(f"  this code, links as written: {medians['as written']:.1f}  {figures['as written']}")
    print(f"  this code, links tracked:    {medians['tracked']:.1f}  {figures['tracked']}")
    ratio = medians["baseline"] / medians["tracked"]
    print(f"speed of tracked composing vs the baseline: {ratio:.0%} (target >= 90%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, nargs="?", default=20_000)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a baseline's process: where herald came from, and one figure
        import herald

        print(herald.__file__)
        print(one_measure(args.count, links_as_written=False))
        return
    report(args.count)
    if args.baseline:
        compare(args.count, args.baseline.resolve(), args.rounds)


if __name__ == "__main__":
    main()
