"""Settings of the certificate manager (the `[acme]` table of berth.toml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AcmeSettings:
    enabled: bool = True
    email: str = ""
    directory: str = "https://acme-v02.api.letsencrypt.org/directory"
