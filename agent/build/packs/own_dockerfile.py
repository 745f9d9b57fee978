"""The rule that comes before every buildpack: an app with its own Dockerfile is built
with it, from its tree as it is (honouring its .dockerignore)."""

from __future__ import annotations

from agent.build.model import BuildPlan
from agent.build.packs import PlanOptions
from agent.build.source import SourceTree


class DockerfileBuildpack:
    name = "dockerfile"
    looks_for = "Dockerfile"

    def detect(self, tree: SourceTree) -> str | None:
        return "Dockerfile" if tree.is_file("Dockerfile") else None

    def plan(self, tree: SourceTree, options: PlanOptions) -> BuildPlan:
        # The image's own CMD/ENTRYPOINT is the web process: no defaults to offer.
        return BuildPlan(builder="dockerfile", dockerfile=None)
