"""Buildpacks: the contract every buildpack meets, and the built-in ones.

A buildpack looks at a source tree (`detect`) and, when it recognises it, decides how to
build it (`plan`). The built-ins (python, node, static, and the Dockerfile rule that
comes before them) are Python classes here with their logic in pure functions; a user's
buildpack is a directory of scripts adapted to the same contract by
`agent.build.scripts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.build.model import BuildPlan
from agent.build.settings import BuildSettings
from agent.build.source import SourceTree


@dataclass(frozen=True)
class PlanOptions:
    """What a buildpack may take into account besides the tree."""

    app: str
    settings: BuildSettings
    env: Mapping[str, str] = field(default_factory=dict)  # the app's config vars
    trust_ca: bool = False  # an extra CA bundle is in the context (berth/ca/)


class Buildpack(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def looks_for(self) -> str:
        """What makes it match, for the no-match error (e.g. "package.json")."""
        ...

    def detect(self, tree: SourceTree) -> str | None:
        """Why it matches (e.g. "requirements.txt"), or None."""
        ...

    def plan(self, tree: SourceTree, options: PlanOptions) -> BuildPlan: ...


def image_for(template: str, version: str) -> str:
    """A base image from a template such as "python:{version}-slim"."""
    return template.replace("{version}", version)


def is_set(env: Mapping[str, str], name: str) -> bool:
    """A Heroku-style switch in config vars: set to anything but "", "0", "false", "no"."""
    return env.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")
