"""Settings of the image builder (the `[build]` table of berth.toml).

Base images are templates: `{version}` is replaced by the runtime version the app asks
for (or the default below). The product's defaults are the official images; the tests
point all three at a local stand-in image because no registry is reachable there.
Sizes are in MiB, waits in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CPUSET = re.compile(r"(\d+(-\d+)?)(,\d+(-\d+)?)*")


@dataclass(frozen=True)
class BuildSettings:
    # How many builds may run at once; more wait for a slot.
    parallel: int = 2

    # Base images of the built-in buildpacks.
    python_image: str = "python:{version}-slim"
    node_image: str = "node:{version}-slim"
    static_image: str = "nginx:stable"
    # Versions used when the app names none (.python-version, runtime.txt, engines.node).
    python_version: str = "3.12"
    node_version: str = "20"

    # The built-in buildpacks (None: the buildpacks/ directory shipped with Berth), then
    # an optional directory of the admin's own buildpacks, asked after the built-ins.
    buildpacks_dir: Path | None = None
    extra_buildpacks_dir: Path | None = None

    # An extra CA bundle (PEM) trusted by install steps: corporate TLS interception.
    ca_bundle: Path | None = None

    # Resource limits of every build step's container. memory_mb = 0: no limit; the
    # build may not swap beyond it. cpu_shares is relative (1024 = an app's share, so
    # 512 lets running apps win under contention); cpuset pins builds to CPUs ("0", "0-1").
    memory_mb: int = 2048
    cpu_shares: int = 512
    cpuset: str = ""

    # Refuse to start a build when the Docker data directory has less free space.
    min_free_disk_mb: int = 2048
    # None: ask the engine where its data lives (DockerRootDir).
    disk_path: Path | None = None

    # Deadlines: the whole build, and each run of a user buildpack's bin/ script.
    timeout: float = 900.0
    script_timeout: float = 30.0

    # Django apps get `manage.py collectstatic --noinput` unless this is off or the app
    # sets DISABLE_COLLECTSTATIC=1.
    collectstatic: bool = True
    # Hand the app's config vars to the collectstatic step (as Heroku does), as build
    # arguments of that step only. They then show in `docker history` of the local image.
    config_vars_at_build: bool = True

    # Lines of build output kept for BuildFailed and the release's log tail.
    log_tail_lines: int = 40
    # Where build contexts are assembled (None: the system temp directory).
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {self.parallel}")
        for name in ("memory_mb", "cpu_shares", "min_free_disk_mb"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        if 0 < self.memory_mb < 6:
            raise ValueError("memory_mb must be 0 (no limit) or at least 6")
        for name in ("timeout", "script_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.cpuset and not _CPUSET.fullmatch(self.cpuset):
            raise ValueError(f"cpuset must look like 0, 0-1 or 0,2, not {self.cpuset!r}")
        if self.log_tail_lines < 1:
            raise ValueError(f"log_tail_lines must be at least 1, not {self.log_tail_lines}")
        for name in ("python_image", "node_image", "static_image"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must name an image")
