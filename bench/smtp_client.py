"""Herald's SMTP client against aiosmtplib, over a relay with a realistic round trip.

    .venv/bin/python bench/smtp_client.py --messages 500 --connections 10

An aiosmtpd relay on loopback (offering PIPELINING) sits behind a proxy that holds back every
byte the relay sends by a delay drawn per connection between --min-ms and --max-ms (20-50 ms
by default): each reply then costs a round trip, as to a relay across the internet. Both
clients send the same rendered campaign message over --connections connections: Herald's
ConnectionPool (MAIL, RCPT and DATA pipelined, then the message), and aiosmtplib with MAIL,
RCPT and DATA as separate calls, which is how it would keep the before/after-the-final-dot
distinction. Prints messages per second for each; the decision is in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller
from common import free_port

from herald.mail import egress
from herald.mail.compose import CampaignMessage, Recipient
from herald.mail.pool import ConnectionPool
from herald.mail.smtp import SmtpSettings

SENDER = "news@bench.test"


class _Relay:
    """Accepts every message; adds PIPELINING to EHLO (aiosmtpd handles it, never says so)."""

    def __init__(self, received: Any) -> None:
        self.received = received  # a multiprocessing.Value, read by the benchmark

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.received.get_lock():
            self.received.value += 1
        return "250 2.0.0 Ok: queued"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy bytes across, each chunk delivered ``delay`` seconds after it arrived, in order."""
    pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await pending.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            pending.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    pending.put_nowait((0.0, b""))
    await delivering


async def start_proxy(target_port: int, low: float, high: float) -> tuple[asyncio.Server, int]:
    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        delay = random.uniform(low, high)
        await asyncio.gather(_pipe(reader, up_writer, 0.0), _pipe(up_reader, writer, delay))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def sample_message() -> bytes:
    message = CampaignMessage(
        subject="Spring offers for {{firstName|you}}",
        html_body="<html><body><h1>Hello {{firstName}}</h1>"
        + "<p>Our spring range is here: twelve new products, each described.</p>" * 30
        + '<p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p></body></html>',
        text_body="",
        from_name="Bench Shop",
        from_email=SENDER,
        base_url="https://mail.bench.test",
    )
    return message.render(Recipient("r@bench.test", "Ada", "Lovelace", "Acme", "token"))


async def herald_client(port: int, count: int, connections: int, data: bytes) -> float:
    smtp = SmtpSettings(
        "127.0.0.1",
        port,
        "none",
        allowed_networks=egress.parse_networks("127.0.0.0/8"),
    )
    pool = ConnectionPool(smtp, connections)
    started = time.perf_counter()
    await asyncio.gather(*(pool.send(SENDER, f"r{i}@bench.test", data) for i in range(count)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return elapsed


async def aiosmtplib_client(port: int, count: int, connections: int, data: bytes) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def one_connection() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False)
        await client.connect()
        try:
            while not queue.empty():
                i = queue.get_nowait()
                await client.mail(SENDER)
                await client.rcpt(f"r{i}@bench.test")
                await client.data(data)  # 354, then the message and its final reply
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return time.perf_counter() - started


def serve_relay(ports: Any, received: Any, low: float, high: float) -> None:
    """The relay and its delaying proxy, in a process of their own (not sharing our GIL)."""
    controller = Controller(_Relay(received), hostname="127.0.0.1", port=free_port())
    controller.start()

    async def forever() -> None:
        _proxy, port = await start_proxy(controller.port, low, high)
        ports.put(port)
        await asyncio.Event().wait()

    asyncio.run(forever())


async def run(args: argparse.Namespace) -> None:
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    received = multiprocessing.Value("i", 0)
    relay = multiprocessing.Process(
        target=serve_relay,
        args=(ports, received, args.min_ms / 1000, args.max_ms / 1000),
        daemon=True,
    )
    relay.start()
    port = ports.get(timeout=30)
    data = sample_message()
    print(
        f"{args.messages} messages of {len(data):,} bytes over {args.connections} connections, "
        f"replies delayed {args.min_ms:g}-{args.max_ms:g} ms"
    )
    try:
        for round_ in range(args.rounds):
            for name, client in (("herald", herald_client), ("aiosmtplib", aiosmtplib_client)):
                before = received.value
                elapsed = await client(port, args.messages, args.connections, data)
                await asyncio.sleep(0.2)  # the relay counts the last replies it sent
                assert received.value - before == args.messages, "messages went missing"
                rate = args.messages / elapsed
                print(f"round {round_ + 1}  {name:<11} {rate:8.1f} messages/s  ({elapsed:.2f} s)")
    finally:
        relay.terminate()
        relay.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--min-ms", type=float, default=20)
    parser.add_argument("--max-ms", type=float, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
