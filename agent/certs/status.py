"""What `berth certs` shows: one `CertStatus` per domain, as data and as a text table.

`describe` derives a domain's status from what the manager knows (pure); `render` is the
CLI's table.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from agent.certs.keys import CertInfo
from agent.certs.policy import CertTimes, renewal_time
from agent.certs.state import AttemptRecord

Source = Literal["acme", "custom", "none"]
# valid: served and not due; renewing/issuing: an order is in flight; pending: waiting for
# its first certificate; failing: the last attempt failed (see last_error, next_attempt);
# expired: the served certificate is past not_after; http-only: ACME off for the app and
# no custom certificate; acme-disabled: ACME is off for the whole server.
State = Literal["valid", "renewing", "issuing", "pending", "failing", "expired",
                "http-only", "acme-disabled"]

DAY = 86400.0


@dataclass(frozen=True)
class CertStatus:
    app: str
    domain: str
    source: Source  # where the served certificate comes from
    acme: bool  # ACME on for this app
    state: State
    issuer: str | None = None
    not_after: float | None = None  # epoch seconds
    days_left: float | None = None
    next_renewal: float | None = None
    last_error: str | None = None
    next_attempt: float | None = None
    failures: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: times as ISO 8601 UTC strings, days left rounded to 0.1."""
        data = asdict(self)
        for key in ("not_after", "next_renewal", "next_attempt"):
            data[key] = iso(data[key])
        if self.days_left is not None:
            data["days_left"] = round(self.days_left, 1)
        return data


def describe(app: str, domain: str, *, acme: bool, cert: CertInfo | None, custom: bool,
             record: AttemptRecord, in_flight: bool, enabled: bool, now: float) -> CertStatus:
    """The status of one domain; `cert` is the one that belongs to it (custom or ACME)."""
    failing = not custom and acme and record.attempts.failures > 0
    next_renewal = None
    if cert is not None and not custom and enabled:
        next_renewal = renewal_time(CertTimes(cert.not_before, cert.not_after), record.ari_time)
    return CertStatus(
        app=app, domain=domain, acme=acme,
        state=_state(acme, cert, custom, record, in_flight, enabled, now),
        source="custom" if custom else ("acme" if cert is not None else "none"),
        issuer=cert.issuer if cert else None,
        not_after=cert.not_after if cert else None,
        days_left=(cert.not_after - now) / DAY if cert else None,
        next_renewal=next_renewal,
        last_error=record.last_error if failing else None,
        next_attempt=record.attempts.next_attempt if failing else None,
        failures=record.attempts.failures if failing else 0,
    )


def _state(acme: bool, cert: CertInfo | None, custom: bool, record: AttemptRecord,
           in_flight: bool, enabled: bool, now: float) -> State:
    if cert is None and not acme:
        return "http-only"
    if cert is not None and cert.not_after <= now:
        return "expired"
    if custom:
        return "valid"
    if not enabled:
        return "acme-disabled" if cert is None else "valid"
    if in_flight:
        return "renewing" if cert is not None else "issuing"
    if record.attempts.failures > 0:
        return "failing"
    return "valid" if cert is not None else "pending"


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _short_time(when: float | None) -> str:
    if when is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def render(statuses: Sequence[CertStatus]) -> str:
    """The `berth certs` table; failing domains get their error on the next line."""
    if not statuses:
        return "no domains (add one with domains:add APP DOMAIN)\n"
    header = ("DOMAIN", "APP", "STATE", "ISSUER", "NOT AFTER (UTC)", "DAYS", "RENEWS (UTC)")
    rows = [header]
    for s in statuses:
        days = "-" if s.days_left is None else f"{s.days_left:.0f}"
        issuer = s.issuer if s.issuer else "-"
        if s.source == "custom":
            issuer = f"{issuer} (custom)"
        rows.append((s.domain, s.app, s.state, issuer, _short_time(s.not_after), days,
                     _short_time(s.next_renewal)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines: list[str] = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        status = statuses[index - 1] if index else None
        if status is not None and status.last_error:
            lines.append(f"  last error: {status.last_error}")
            if status.next_attempt is not None:
                lines.append(f"  next attempt: {_short_time(status.next_attempt)} UTC "
                             f"(after {status.failures} failure(s))")
    return "\n".join(lines) + "\n"
