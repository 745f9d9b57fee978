"""The probe `berth doctor` sends through an address to learn whether it reaches this
agent's proxy: `GET /.well-known/berth-probe/TOKEN`, on HTTP or HTTPS, for any host.

Each proxy draws a random token when it is created; only a request carrying exactly that
token is answered (200, with a proof derived from the token, so a server that answers
every path with 200 or echoes the path is not taken for this one). Anything else under
the prefix is a 404 like any unknown path: the probe reveals nothing to whoever does not
hold the token. The token is given to callers of the control API only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = b"/.well-known/berth-probe/"


def proof(token: str) -> bytes:
    """What the proxy holding `token` answers the probe with."""
    return hmac.new(token.encode(), b"berth-probe", hashlib.sha256).hexdigest().encode()


class ProbeToken:
    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self._target = PREFIX + self.token.encode()
        self.proof = proof(self.token)

    def answer(self, target: bytes) -> bytes | None:
        """The proof for a request target under PREFIX carrying the token, else None."""
        path = target.split(b"?", 1)[0]
        return self.proof if hmac.compare_digest(path, self._target) else None
