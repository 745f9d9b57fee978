"""Settings of the certificate manager (the `[acme]` table of berth.toml).

Every wait the manager does has its deadline here: network requests to the CA, the
whole order (challenges plus finalization), and the scan and backoff intervals that keep
it from ever polling a CA in a tight loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
KEY_TYPES = ("ecdsa-p256", "rsa2048")


@dataclass(frozen=True)
class AcmeSettings:
    # Issue and renew certificates with ACME at all (custom certificates work either way).
    enabled: bool = True
    # Contact address registered with the account (expiry mails); empty registers none.
    email: str = ""
    directory: str = LETS_ENCRYPT
    # Use `staging_directory` instead of `directory` for everything (untrusted certs,
    # generous rate limits: for trying Berth out).
    staging: bool = False
    staging_directory: str = LETS_ENCRYPT_STAGING
    # CA bundle to verify the ACME server's own TLS with instead of the system's (for a
    # private ACME server such as Pebble).
    ca_bundle: Path | None = None
    # Key of each certificate: "ecdsa-p256" (default) or "rsa2048".
    key_type: str = "ecdsa-p256"
    # Renewal scan: every `scan_interval` seconds, +/- `scan_jitter` (a fraction).
    scan_interval: float = 600.0
    scan_jitter: float = 0.1
    # Backoff after a failed attempt: backoff_min, doubling, capped at backoff_max.
    backoff_min: float = 300.0
    backoff_max: float = 6 * 3600.0
    # Near expiry (a tenth of the lifetime left) the backoff is capped lower than usual.
    emergency_backoff_max: float = 3600.0
    # Before ordering, check that the name resolves to an address of this host.
    preflight: bool = True
    # Addresses that count as this host besides the local interfaces' (a NAT's public IP).
    public_addresses: tuple[str, ...] = ()
    preflight_timeout: float = 10.0
    # After a failure, prove the fix with a dry run against staging before spending
    # an attempt against `directory` (skipped when `directory` is the staging one).
    staging_dry_run: bool = True
    # Ask the CA for its ACME Renewal Information (ARI) when it offers it.
    ari: bool = True
    # Deadlines: one HTTP request to the CA, and a whole order from creation to the
    # downloaded certificate (polls back off up to `poll_interval_max`).
    network_timeout: float = 30.0
    order_timeout: float = 120.0
    poll_interval_max: float = 2.0
    # Orders in flight at once.
    max_parallel_orders: int = 2

    def __post_init__(self) -> None:
        if self.key_type not in KEY_TYPES:
            raise ValueError(f"key_type must be one of {', '.join(KEY_TYPES)}")
        for name in ("scan_interval", "backoff_min", "backoff_max", "emergency_backoff_max",
                     "network_timeout", "order_timeout", "poll_interval_max",
                     "preflight_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.scan_jitter < 1:
            raise ValueError("scan_jitter must be a fraction in [0, 1)")
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must not be below backoff_min")
        if self.max_parallel_orders < 1:
            raise ValueError("max_parallel_orders must be at least 1")
        for name in ("directory", "staging_directory"):
            if not getattr(self, name).startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL")

    @property
    def active_directory(self) -> str:
        """The directory URL orders go to."""
        return self.staging_directory if self.staging else self.directory

    @property
    def dry_run_directory(self) -> str | None:
        """Where a dry run goes after a failure, or None when there is none to make."""
        if not self.staging_dry_run or self.active_directory == self.staging_directory:
            return None
        return self.staging_directory
