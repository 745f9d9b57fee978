"""Settings of the add-ons (the `[addons]` table of berth.toml).

Images are templates like the buildpacks' base images: `{version}` is replaced by the
version asked for (`addons:create APP postgres --version 15`) or the default below. The
product's defaults are the official images; the tests point them at local stand-ins.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddonSettings:
    postgres_image: str = "postgres:{version}"
    redis_image: str = "redis:{version}"
    postgres_version: str = "16"
    redis_version: str = "7"
    # How long a new or restarted add-on may take to answer before it counts as failed.
    start_timeout: float = 60.0
    # Seconds of grace a stopping add-on gets (a clean shutdown of postgres) before kill.
    stop_timeout: float = 30.0
    # Deadlines of the commands Berth runs inside an add-on, after which they are killed:
    # a dump (pg_dump, BGSAVE), a restore (pg_restore), and every short command (the
    # ready probe, the server's version, redis-cli, a verify's sanity query).
    capture_timeout: float = 10800.0
    restore_timeout: float = 10800.0
    command_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("capture_timeout", "restore_timeout", "command_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")

    def image(self, kind: str, version: str) -> str:
        template = self.postgres_image if kind == "postgres" else self.redis_image
        return template.replace("{version}", version)

    def default_version(self, kind: str) -> str:
        return self.postgres_version if kind == "postgres" else self.redis_version
