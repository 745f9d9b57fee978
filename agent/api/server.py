"""Control API: whole-server backup and restore (admin keys only: agent.api.access
refuses app keys every path outside /apps/APP).

POST /server/backups writes an archive and streams the progress, ending with its name;
GET /server/backups/NAME streams the archive and removes it once sent whole; POST
/server/restore takes an archive as the request body, then streams the restore.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.api.params import required, services
from agent.api.streaming import stream_operation
from agent.deploy.output import DeployOutput
from agent.errors import BerthError
from agent.serverbackup import restoring
from agent.serverbackup.restoring import ServerRestore
from agent.serverbackup.service import ServerBackups

_CHUNK = 1024 * 1024


def _server(request: Request) -> ServerBackups:
    return required(services(request).server_backups,
                    "server backups are not available on this agent")


async def backup(request: Request) -> Response:
    server = _server(request)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        written = await server.backup(out)
        out.heading(f"{written.name}: {written.apps} app(s), {written.addons} add-on(s), "
                    f"{written.size} bytes, sha256 {written.sha256[:16]}...")
        return {"name": written.name, "size": written.size, "sha256": written.sha256}

    return stream_operation(request, operation)


async def download(request: Request) -> Response:
    """The archive's bytes, streamed from its file; removed once sent whole."""
    path = _server(request).archive_path(request.path_params["name"])
    handle = path.open("rb")

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk
        path.unlink(missing_ok=True)

    return StreamingResponse(chunks(), media_type="application/x-tar")


async def restore(request: Request) -> Response:
    agent = services(request)
    server = _server(request)
    force = request.query_params.get("force") == "1"
    restoring.refuse_unless_empty(agent, force)  # before the upload, not after it
    staging = restoring.staging_dir(server)
    try:
        await _receive(request, staging / "archive.tar", restoring.room(staging))
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise
    restore_run = ServerRestore(server, agent)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return await restore_run.run(staging, force=force, out=out)

    return stream_operation(request, operation)


async def _receive(request: Request, target: Path, limit: int) -> None:
    size = 0
    with target.open("wb") as sink:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BerthError(f"the archive is larger than the {limit} bytes this server "
                                 "has room for")
            sink.write(chunk)
    if size == 0:
        raise BerthError("no archive came: berth restore FILE (over SSH: restore - < FILE)")


def routes() -> list[BaseRoute]:
    return [
        Route("/server/backups", backup, methods=["POST"]),
        Route("/server/backups/{name}", download, methods=["GET"]),
        Route("/server/restore", restore, methods=["POST"]),
    ]
