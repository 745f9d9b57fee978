"""Which certificate each domain is served with, and keeping the proxy's store in line.

`Serving` holds the desired state (domain -> app, ACME on/off), the certificates in
memory (ACME ones per domain, custom ones per app) and what the sink currently serves.
The rule: an app's custom certificate wins for the names it covers; otherwise the ACME
certificate, if ACME is on for the app; an expired certificate is not put (the proxy would
refuse it). `sync` applies the rule to the sink and touches only what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from agent.certs.errors import CertificateError
from agent.certs.interfaces import CertificateSink
from agent.certs.keys import CertInfo, check_pair
from agent.certs.policy import CertTimes
from agent.certs.storage import KeyPair
from agent.errors import BerthError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """A certificate held in memory: the PEM pair and what it says."""

    pair: KeyPair
    info: CertInfo

    @property
    def times(self) -> CertTimes:
        return CertTimes(self.info.not_before, self.info.not_after)

    @classmethod
    def parse(cls, pair: KeyPair, what: str) -> Held | None:
        """A stored pair, checked; None (logged) when it is unusable."""
        try:
            return cls(pair, check_pair(pair.chain_pem, pair.key_pem))
        except CertificateError as exc:
            log.error("stored certificate unusable what=%s error=%s", what, exc)
            return None


class Serving:
    def __init__(self, sink: CertificateSink) -> None:
        self._sink = sink
        self.desired: dict[str, tuple[str, bool]] = {}  # domain -> (app, acme on)
        self.custom: dict[str, Held] = {}  # app -> its own certificate
        self.acme: dict[str, Held] = {}  # domain -> ACME certificate
        self._served: dict[str, str] = {}  # domain -> serial the sink has

    def domains_of(self, app: str) -> list[str]:
        return sorted(d for d, (a, _) in self.desired.items() if a == app)

    def apps(self) -> set[str]:
        return {a for a, _ in self.desired.values()} | set(self.custom)

    def served_count(self) -> int:
        return len(self._served)

    def custom_for(self, domain: str) -> Held | None:
        """The app's custom certificate when it covers `domain`."""
        app, _ = self.desired[domain]
        custom = self.custom.get(app)
        return custom if custom is not None and custom.info.covers(domain) else None

    def acme_applies(self, domain: str) -> bool:
        """ACME is responsible for `domain`: on for its app, no custom certificate covers it."""
        return self.desired[domain][1] and self.custom_for(domain) is None

    def candidate(self, domain: str) -> Held | None:
        """The certificate that belongs to `domain` now, expired or not."""
        if domain not in self.desired:
            return None
        custom = self.custom_for(domain)
        if custom is not None:
            return custom
        return self.acme.get(domain) if self.desired[domain][1] else None

    def sync(self, domains: Iterable[str], now: float) -> None:
        """Make the sink serve each domain's candidate (unless expired), or nothing."""
        for domain in sorted(domains):
            held = self.candidate(domain)
            if held is not None and held.info.not_after <= now:
                held = None
            current = self._served.get(domain)
            if held is None and current is not None:
                self._sink.remove(domain)
                del self._served[domain]
                log.info("certificate withdrawn domain=%s", domain)
            elif held is not None and current != held.info.serial:
                try:
                    self._sink.put(domain, held.pair.chain_pem, held.pair.key_pem)
                except BerthError as exc:  # the proxy refused it: it keeps what it serves
                    log.error("certificate not served domain=%s error=%s", domain, exc)
                    continue
                self._served[domain] = held.info.serial
                log.info("certificate served domain=%s serial=%s not_after=%d", domain,
                         held.info.serial, held.info.not_after)
