"""Settings of the proxy's data plane (the `[proxy]` table of berth.toml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProxySettings:
    listen: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
