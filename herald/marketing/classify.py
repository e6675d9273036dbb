"""Human or machine: the rules that classify a tracking hit (an open or a click).

Each rule is its own function answering a Reason (machine) or None (no objection), so each
has its own test. The rules that look at the request run when it arrives
(:meth:`HitClassifier.verdict`); those that need the send's history run when the buffered
hits are written (herald.marketing.engagement). Only the reason is kept: never the client's
address or user agent. A machine hit is counted apart, never dropped.

Image proxies that fetch when the person opens the message (Gmail's, Yahoo's) are human:
no rule here matches them.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from collections.abc import Iterable

from herald.mail.egress import Network
from herald.mail.links import TRAP_LINK

# A click this soon after the recipient's server accepted the message is a link scanner's:
# a person has not even seen it yet.
FAST_CLICK_SECONDS = 10.0
# Clicks on two different links of one message this close together: a scanner walking the
# links (a person needs longer to come back to the message and pick another one).
BURST_SECONDS = 2.0
# After a hit on the trap link, the same send's hits for this long are the scanner's too
# (it fetches the message's images and links in any order).
AFTER_TRAP_SECONDS = 60.0
# The agent Apple Mail Privacy Protection's proxies send: exactly this, nothing after it.
APPLE_PROXY_AGENT = "Mozilla/5.0"


class Reason(enum.StrEnum):
    APPLE_PRIVACY_PROXY = "apple_privacy_proxy"
    SCANNER_AGENT = "scanner_agent"
    HEAD_REQUEST = "head_request"
    TRAP_LINK = "trap_link"
    FAST_CLICK = "fast_click"
    CLICK_BURST = "click_burst"


REASON_TEXT = {
    Reason.APPLE_PRIVACY_PROXY: "Apple Mail Privacy Protection loaded the images",
    Reason.SCANNER_AGENT: "a link scanner or bot (by its user agent)",
    Reason.HEAD_REQUEST: "a HEAD request (only programs send them)",
    Reason.TRAP_LINK: "the hidden link no person sees was followed",
    Reason.FAST_CLICK: f"clicked within {FAST_CLICK_SECONDS:.0f} s of delivery",
    Reason.CLICK_BURST: f"several links clicked within {BURST_SECONDS:.0f} s",
}

# User agents no person's mail client or browser sends. Our own short list of kinds, not a
# vendor's list: crawlers and link-preview bots, HTTP libraries, mail security gateways by
# name, and no agent at all. Plain substring tests (a long alternation of patterns costs a
# regular expression tens of microseconds per agent). "bot" only as a word's end followed
# by "/", "-", ";" or ")" (Googlebot/2.1, Slackbot-LinkExpanding), so a phone model such as
# "CUBOT P30" is no bot.
_SCANNER_WORDS = (
    "crawler", "spider", "headless", "preview", "facebookexternalhit", "whatsapp",
    "barracuda", "mimecast", "proofpoint", "symantec", "trendmicro", "trend micro",
    "forcepoint", "sophos", "fortinet", "safelinks", "urldefense",
)  # fmt: skip
_HTTP_LIBRARIES = (
    "python", "curl", "wget", "go-http-client", "java", "okhttp", "libwww", "node-fetch",
    "axios", "apache-httpclient", "aiohttp", "httpx",
)  # fmt: skip
_BOT = re.compile(r"bot(?:[/;)-]|$)")


def client_address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The hit's client address as the request reports it: the peer, or the address a
    trusted proxy forwarded (uvicorn applies HERALD_FORWARDED_ALLOW_IPS before Herald sees
    the request, so an untrusted peer's X-Forwarded-For never gets here)."""
    if not host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def head_request(method: str) -> Reason | None:
    return Reason.HEAD_REQUEST if method == "HEAD" else None


def trap_link(link: int | None) -> Reason | None:
    return Reason.TRAP_LINK if link == TRAP_LINK else None


def apple_privacy_proxy(host: str | None, agent: str, networks: Iterable[Network]) -> Reason | None:
    """Apple's proxy addresses with the bare agent: Mail Privacy Protection prefetching."""
    if agent.strip() != APPLE_PROXY_AGENT:
        return None
    address = client_address(host)
    if address is None:
        return None
    return Reason.APPLE_PRIVACY_PROXY if any(address in net for net in networks) else None


def scanner_agent(agent: str) -> Reason | None:
    lower = agent.strip().lower()
    if (
        not lower
        or lower.startswith(_HTTP_LIBRARIES)
        or any(word in lower for word in _SCANNER_WORDS)
        or ("bot" in lower and _BOT.search(lower))
    ):
        return Reason.SCANNER_AGENT
    return None


# The rules on a send's history take times as seconds since the epoch (time.time()): the
# writers compare thousands of them a second.


def fast_click(at: float, delivered_at: float | None) -> Reason | None:
    """A click within seconds of delivery, or before the delivery was even recorded (the
    send still in its SMTP transaction)."""
    if delivered_at is None or at - delivered_at < FAST_CLICK_SECONDS:
        return Reason.FAST_CLICK
    return None


def click_burst(at: float, link: int, earlier: Iterable[tuple[float, int]]) -> Reason | None:
    """``earlier``: the send's other clicks (time, link). Another link within the window."""
    for when, other in earlier:
        if other != link and abs(at - when) <= BURST_SECONDS:
            return Reason.CLICK_BURST
    return None


def after_trap(at: float, trapped_at: float | None) -> Reason | None:
    """A hit of a send whose trap link was followed, within the scanner's window after it."""
    if trapped_at is not None and at - trapped_at <= AFTER_TRAP_SECONDS:
        return Reason.TRAP_LINK
    return None


def seconds(when: dt.datetime | None) -> float | None:
    """A stored time as the rules take it."""
    return None if when is None else when.timestamp()


class HitClassifier:
    """The rules that need only the request, with the configured Apple networks.

    A flood comes from a handful of agents: each agent's verdict is kept under the agent's
    hash (the agent itself is not kept), so the scanner rule runs once per agent.
    """

    AGENTS_KEPT = 4096

    def __init__(self, apple_networks: Iterable[Network]) -> None:
        self.apple_networks = tuple(apple_networks)
        self._agents: dict[int, Reason | None] = {}

    def verdict(
        self, method: str, host: str | None, agent: str, link: int | None = None
    ) -> Reason | None:
        """The first rule that says machine, or None. ``link``: the clicked link's number
        (None for an open)."""
        return (
            trap_link(link)
            or head_request(method)
            or apple_privacy_proxy(host, agent, self.apple_networks)
            or self._scanner_agent(agent)
        )

    def _scanner_agent(self, agent: str) -> Reason | None:
        key = hash(agent)
        if key in self._agents:
            return self._agents[key]
        if len(self._agents) >= self.AGENTS_KEPT:
            self._agents.clear()
        found = self._agents[key] = scanner_agent(agent)
        return found
