"""Control API: deploying a tree, pushed (the pre-receive hook posts `git archive`) or
the live commit's again (ps:rebuild); the deploy's output streams back."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agent.api.params import app_param, services
from agent.api.services import Services
from agent.api.streaming import stream_operation
from agent.deploy.errors import NothingToRelease
from agent.deploy.output import DeployOutput
from agent.deploy.pushbase import PushBase
from agent.errors import BerthError
from agent.services import trees

_BRANCH = re.compile(r"refs/heads/[A-Za-z0-9._/-]{1,200}")


async def receive_push(request: Request) -> Response:
    """The pre-receive hook posts the pushed tree (git archive) and streams the deploy."""
    agent = services(request)
    name = app_param(request)
    sha = _commit_id(request.query_params.get("sha", ""), "sha")
    agent.apps.get(name)
    base = _push_base(request, agent.config.paths.repo(name))
    workdir = trees.new_workdir(agent.config.paths.builds, name, sha)
    await trees.receive(request.stream(), workdir, agent.config.deploy.max_push_bytes)
    return _deploy_tree(request, agent, name, sha, workdir, "Deploy", base)


def _commit_id(value: str, name: str) -> str:
    if len(value) not in (40, 64) or any(c not in "0123456789abcdef" for c in value):
        raise BerthError(f"{name} must be a full hexadecimal commit id")
    return value


def _push_base(request: Request, repo: Path) -> PushBase | None:
    """The branch the push moves and its old value (the hook sends both), if given."""
    ref = request.query_params.get("ref")
    if ref is None:
        return None
    if not _BRANCH.fullmatch(ref) or ".." in ref:
        raise BerthError("ref must be a branch, refs/heads/NAME")
    return PushBase(repo, ref, _commit_id(request.query_params.get("old", ""), "old"))


async def rebuild(request: Request) -> Response:
    """ps:rebuild: build the live release's commit again from the app's repository
    (new base images, buildpack changes, build-time config) and release it."""
    agent = services(request)
    name = app_param(request)
    agent.apps.get(name)
    live = agent.releases.live(name)
    if live is None or not live.git_sha:
        raise NothingToRelease(name)
    workdir = trees.new_workdir(agent.config.paths.builds, name, live.git_sha)
    await trees.export(agent.config.paths.repo(name), live.git_sha, workdir,
                       agent.config.deploy.max_push_bytes)
    return _deploy_tree(request, agent, name, live.git_sha, workdir, "Rebuild")


def _deploy_tree(
    request: Request, agent: Services, name: str, sha: str, workdir: Path, description: str,
    base: PushBase | None = None,
) -> Response:
    """Deploy the tree in workdir/src, streamed; cancellable until the swap; workdir
    removed at the end."""
    committed = False

    def commit() -> None:
        nonlocal committed
        committed = True

    async def operation(out: DeployOutput) -> dict[str, Any]:
        try:
            release = await agent.deployer.deploy_push(name, sha, workdir / "src", out,
                                                   committed=commit, description=description,
                                                   base=base)
            return {"release": release.number}
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    return stream_operation(request, operation, may_cancel=lambda: not committed)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/deploys", receive_push, methods=["POST"]),
        Route("/ps/rebuild", rebuild, methods=["POST"]),
    ]
