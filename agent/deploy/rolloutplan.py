"""Where a release should end up, as one value a roll-out works from.

Named apart from the proxy's route targets (agent.proxy.routes.Target): this is the
whole wish for an app (instances, route, checks), not one upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.appjson import HealthCheck
from agent.proxy import RouteOptions
from agent.releases import Release


@dataclass(frozen=True)
class RolloutPlan:
    """Where a release should end up: its instances, its route, their checks."""

    release: Release
    formation: Mapping[str, int]
    hosts: Sequence[str]
    options: RouteOptions
    checks: Sequence[HealthCheck]
    tls: bool
    restart_policy: str
    health_timeout: float
    mounts: tuple[tuple[str, str], ...] = ()  # persistent storage (agent.storage)
    # A tar of the pushed tree for /app, when the release's image is its code step's
    # base (agent.deploy.earlystart); None otherwise.
    code: Path | None = None
    # Awaited after the new instances are created, before they start (an early start
    # that creates them before the build has confirmed their image).
    before_start: Callable[[], Awaitable[None]] | None = None
