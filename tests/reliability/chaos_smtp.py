"""An SMTP server that misbehaves at random, as relays do on a bad day: 421 (and hangs up),
451 and 550 answers, a connection dropped at the DATA command, one dropped after the final
dot (the message was received but the client never hears so), and stalls. Seeded, counted."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.smtp_server import SERVER_NAME, SmtpServer, Stage, _Handler


@dataclass(frozen=True)
class FaultRates:
    """Chance of each fault per SMTP transaction."""

    close_421: float = 0.02
    defer_451: float = 0.03
    reject_550: float = 0.01
    drop_at_data: float = 0.01
    drop_after_dot: float = 0.005
    stall: float = 0.01
    stall_seconds: tuple[float, float] = (0.5, 2.0)


class ChaosSmtp(SmtpServer):
    def __init__(self, seed: int, rates: FaultRates | None = None) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rates = rates or FaultRates()
        self.faults: Counter[str] = Counter()
        self._rng_lock = threading.Lock()

    def roll(self, fault: str) -> bool:
        with self._rng_lock:
            hit = self.rng.random() < getattr(self.rates, fault)
        if hit:
            self.faults[fault] += 1
        return hit

    async def answer(self, server: SMTP, address: str, stage: Stage) -> str | None:
        if self.roll("stall"):
            await asyncio.sleep(self.rng.uniform(*self.rates.stall_seconds))
        if stage == "rcpt":
            if self.roll("close_421"):
                assert server.transport is not None
                asyncio.get_running_loop().call_later(0.01, server.transport.close)
                return "421 4.3.2 Service shutting down (chaos)"
            if self.roll("defer_451"):
                return "451 4.7.1 Greylisted, try again later (chaos)"
            if self.roll("reject_550"):
                return "550 5.1.1 No such user here (chaos)"
        return None

    def _make_controller(self) -> Controller:
        return _ChaosController(
            _ChaosHandler(self), hostname=self.host, port=self.port, server_hostname=SERVER_NAME
        )


class _ChaosHandler(_Handler):
    owner: ChaosSmtp

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await self.owner.answer(server, envelope.rcpt_tos[0], "data")
        if answer is not None:
            return answer
        received = self.owner.record(server, envelope, session)
        if self.owner.roll("drop_after_dot"):
            assert server.transport is not None
            server.transport.close()  # kept the message, never says so
            await asyncio.sleep(60)  # cancelled by aiosmtpd once the connection is gone
        return f"250 2.0.0 Ok: queued as {received.queue_id}"


class _ChaosSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        if isinstance(handler, _ChaosHandler) and handler.owner.roll("drop_at_data"):
            assert self.transport is not None
            self.transport.close()  # before the 354: the message never started
            return
        await super().smtp_DATA(arg)


class _ChaosController(Controller):
    def factory(self) -> Any:
        return _ChaosSMTP(self.handler, **self.SMTP_kwargs)
