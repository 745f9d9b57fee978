"""Settings of the image builder (the `[build]` table of berth.toml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildSettings:
    parallel: int = 2
