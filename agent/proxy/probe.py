"""The probe `berth doctor` sends through an address to learn whether it reaches this
agent's proxy: `GET /.well-known/berth-probe/NONCE`, on HTTP or HTTPS, for any host.

A challenge and its response. Each proxy draws a random secret when it is created; the
secret never leaves the agent process. The control API issues nonces (`ProbeKey.issue`),
each with the answer expected for it, HMAC-SHA256(secret, nonce); doctor sends one nonce
per address and takes the address for this agent only when the expected answer comes
back. A nonce is answered once, within `TTL` seconds of being issued (doctor's probe
deadline and a margin), then forgotten; any other nonce (made up, expired, already
answered, never issued) is a 404 like any unknown path. So a server that receives
doctor's probe (a domain that points elsewhere) learns a nonce that is worthless within
seconds, and already spent if it reached this proxy first; no secret or answer it could
use to recognize this server afterwards; an answer replayed or forwarded for another
nonce does not match.

Each caller (an SSH key's name; "" for the server itself) may hold at most
`MOST_PER_CALLER` unanswered nonces, and the proxy `_MAX_LIVE` in all: past either, new
nonces are refused (`TooManyNonces`) rather than another caller's live ones evicted.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import BerthError

PREFIX = b"/.well-known/berth-probe/"
TTL = 20.0  # seconds a nonce may be answered after it is issued (5 s probes, a margin)
MOST_AT_ONCE = 256  # nonces one call may ask for
MOST_PER_CALLER = 512  # unanswered nonces one caller may hold
_MAX_LIVE = 4096  # unanswered nonces in all


class TooManyNonces(BerthError):
    """A caller (or all of them) holds as many unanswered nonces as it may."""

    status = 429


@dataclass(frozen=True)
class Challenge:
    """A nonce to send, and the answer only this agent's proxy gives to it."""

    nonce: str
    answer: str


class ProbeKey:
    """The proxy's probe secret and the nonces it currently answers (shared by the
    proxy's event loop and the control API: guarded by a lock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = secrets.token_bytes(32)
        self._clock = clock
        self._live: OrderedDict[str, tuple[float, str]] = OrderedDict()  # -> expiry, caller
        self._lock = threading.Lock()

    def issue(self, count: int, caller: str = "") -> list[Challenge]:
        """`count` fresh nonces (at most MOST_AT_ONCE) for `caller`, each answered once
        within TTL seconds; TooManyNonces when that would pass a limit."""
        fresh = [secrets.token_urlsafe(24) for _ in range(max(0, min(count, MOST_AT_ONCE)))]
        with self._lock:
            now = self._clock()
            self._forget_expired(now)
            held = sum(1 for _, who in self._live.values() if who == caller)
            if held + len(fresh) > MOST_PER_CALLER or len(self._live) + len(fresh) > _MAX_LIVE:
                raise TooManyNonces(
                    f"too many probe nonces outstanding ({held} for this caller, "
                    f"{len(self._live)} in all): try again in {TTL:g} s")
            for nonce in fresh:
                self._live[nonce] = (now + TTL, caller)
        return [Challenge(nonce, self._sign(nonce)) for nonce in fresh]

    def answer(self, target: bytes) -> bytes | None:
        """The answer to a request target under PREFIX carrying a live nonce, else None."""
        path = target.split(b"?", 1)[0]
        if not path.startswith(PREFIX):
            return None
        nonce = path[len(PREFIX):].decode("latin-1")
        with self._lock:
            live = self._live.pop(nonce, None)  # answered once, then forgotten
        if live is None or live[0] <= self._clock():
            return None
        return self._sign(nonce).encode()

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def _forget_expired(self, now: float) -> None:
        while self._live and next(iter(self._live.values()))[0] <= now:
            self._live.popitem(last=False)
