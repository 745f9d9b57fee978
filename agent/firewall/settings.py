"""Settings of the host firewall (the `[firewall]` table of berth.toml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FirewallSettings:
    enabled: bool = False
