"""What `berth certs` shows: one `CertStatus` per domain, as data and as a text table."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

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
