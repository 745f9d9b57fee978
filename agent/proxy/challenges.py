"""ACME HTTP-01 tokens the proxy answers on its HTTP port, before routing, for any host.

The certificate manager sets a token when it asks the CA for validation and removes it
afterwards; the proxy answers `GET /.well-known/acme-challenge/TOKEN` with the key
authorization, and everything else under that prefix with 404.
"""

from __future__ import annotations

import re

from agent.errors import InvalidName

PREFIX = b"/.well-known/acme-challenge/"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_.-]{1,1024}")


class ChallengeTokens:
    def __init__(self) -> None:
        self._tokens: dict[bytes, bytes] = {}

    def set(self, token: str, key_authorization: str) -> None:
        if not _TOKEN.fullmatch(token):
            raise InvalidName("ACME token", token, "must be base64url characters")
        if not _KEY_AUTHORIZATION.fullmatch(key_authorization):
            raise InvalidName(
                "key authorization", key_authorization, "must be TOKEN.THUMBPRINT (base64url)"
            )
        self._tokens[token.encode()] = key_authorization.encode()

    def remove(self, token: str) -> None:
        self._tokens.pop(token.encode(), None)

    def __len__(self) -> int:
        return len(self._tokens)

    def answer(self, target: bytes) -> bytes | None:
        """The key authorization for a request target under PREFIX, or None."""
        token = target[len(PREFIX) :].split(b"?", 1)[0]
        return self._tokens.get(token)
