"""The probe `berth doctor` sends through an address to learn whether it reaches this
agent's proxy: `GET /.well-known/berth-probe/NONCE`, on HTTP or HTTPS, for any host.

A challenge and its response. Each proxy draws a random secret when it is created; the
secret never leaves the agent process. The control API issues nonces (`ProbeKey.issue`),
each with the answer expected for it, HMAC-SHA256(secret, nonce); doctor sends one nonce
per address and takes the address for this agent only when the expected answer comes
back. A nonce is answered for `TTL` seconds after it is issued, then never again; any
other nonce (made up, expired, never issued) is a 404 like any unknown path. So a server
that receives doctor's probe (a domain that points elsewhere) learns a nonce that is soon
worthless, and no secret or answer it could use to recognize this server afterwards;
an answer replayed or forwarded for another nonce does not match.
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

PREFIX = b"/.well-known/berth-probe/"
TTL = 60.0  # seconds a nonce is answered after it is issued
MOST_AT_ONCE = 256  # nonces one call may ask for
_MAX_LIVE = 4096  # nonces answered at once; the oldest go first


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
        self._live: OrderedDict[str, float] = OrderedDict()  # nonce -> when it expires
        self._lock = threading.Lock()

    def issue(self, count: int) -> list[Challenge]:
        """`count` fresh nonces (at most MOST_AT_ONCE), answered for TTL seconds."""
        fresh = [secrets.token_urlsafe(24) for _ in range(max(0, min(count, MOST_AT_ONCE)))]
        with self._lock:
            now = self._clock()
            self._forget_expired(now)
            for nonce in fresh:
                self._live[nonce] = now + TTL
            while len(self._live) > _MAX_LIVE:
                self._live.popitem(last=False)
        return [Challenge(nonce, self._sign(nonce)) for nonce in fresh]

    def answer(self, target: bytes) -> bytes | None:
        """The answer to a request target under PREFIX carrying a live nonce, else None."""
        path = target.split(b"?", 1)[0]
        if not path.startswith(PREFIX):
            return None
        nonce = path[len(PREFIX):].decode("latin-1")
        with self._lock:
            expires = self._live.get(nonce)
        if expires is None or expires <= self._clock():
            return None
        return self._sign(nonce).encode()

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def _forget_expired(self, now: float) -> None:
        while self._live and next(iter(self._live.values())) <= now:
            self._live.popitem(last=False)
