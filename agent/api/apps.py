"""Control API endpoints for apps: lifecycle, settings, config, domains, processes,
logs, releases, rollback, and receiving a push."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent import storage
from agent.api.services import Services
from agent.api.streaming import MEDIA_TYPE, event, stream_operation
from agent.appsettings import apply_setting
from agent.deploy.orchestrator import NothingToRelease
from agent.deploy.output import DeployOutput
from agent.deploy.runtime import Container, LogLine
from agent.errors import BerthError, Conflict
from agent.names import check_app, check_config_key, check_domain, check_process_type
from agent.releases import Release
from agent.repos import ensure_repo, remove_repo
from agent.sourcetree import unpack


def services(request: Request) -> Services:
    result: Services = request.app.state.services
    return result


def app_param(request: Request) -> str:
    return check_app(request.path_params["app"])


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BerthError("request body is not JSON") from None
    if not isinstance(data, dict):
        raise BerthError("request body must be a JSON object")
    return data


# apps ----------------------------------------------------------------------------------


def _summary(s: Services, name: str) -> dict[str, Any]:
    app = s.apps.get(name)
    live = s.releases.live(name)
    return {
        "name": name,
        "release": live.number if live else None,
        "git_sha": live.git_sha if live else None,
        "domains": s.deployer.hosts(name),
        "formation": dict(app.formation),
        "stopped": app.stopped,
    }


async def list_apps(request: Request) -> Response:
    s = services(request)
    return JSONResponse([_summary(s, name) for name in s.apps.names()])


async def create_app(request: Request) -> Response:
    s = services(request)
    name = check_app(str((await json_body(request)).get("name", "")))
    s.apps.create(name)
    s.events.record(name, "AppCreated", "created")
    _ensure_repo(s, name)
    return JSONResponse(_summary(s, name), status_code=201)


def _ensure_repo(s: Services, name: str) -> Path:
    return ensure_repo(s.config.paths, name, command=s.ssh_command, owner=s.config.ssh.user)


async def ensure_app_repo(request: Request) -> Response:
    """First push: create the app if needed; always (re)install the repo's hooks."""
    s = services(request)
    name = app_param(request)
    created = False
    if not s.apps.exists(name):
        s.apps.create(name)
        s.events.record(name, "AppCreated", "created by a push")
        created = True
    path = _ensure_repo(s, name)
    return JSONResponse({"path": str(path), "created": created})


async def app_info(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    info = _summary(s, name)
    app = s.apps.get(name)
    info["settings"] = app.settings.to_json()
    info["deploy_branches"] = list(app.settings.deploy_branches)
    info["created_at"] = app.created_at
    info["repo"] = str(s.config.paths.repo(name))
    info["storage"] = _storage(s, name)["mounts"]
    info["events"] = [
        {"time": e.time, "kind": e.kind, "message": e.message} for e in s.events.list(name, 10)
    ]
    info["traffic"] = _traffic(s, name)
    return JSONResponse(info)


def _traffic(s: Services, name: str) -> dict[str, int] | None:
    """The proxy's counters for the app since the agent started (None: never routed)."""
    if s.proxy is None:
        return None
    try:
        counters = s.proxy.counters(name)
    except BerthError:
        return None
    return dataclasses.asdict(counters)


async def destroy_app(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    if request.query_params.get("confirm") != name:
        raise BerthError(f"destroying {name} removes its containers, images, repository and "
                         f"data: confirm with --confirm {name}")
    s.apps.get(name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        await s.deployer.destroy(name, out)
        remove_repo(s.config.paths, name)
        out.heading(f"{name} destroyed")
        return {"destroyed": name}

    return stream_operation(request, operation)


async def set_app_settings(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    settings = s.apps.get(name).settings
    for key, value in body.items():
        settings = apply_setting(settings, str(key), str(value))
    s.apps.save_settings(name, settings)
    await s.deployer.refresh_routing(name)
    return JSONResponse(settings.to_json())


# config --------------------------------------------------------------------------------


async def get_config(request: Request) -> Response:
    return JSONResponse(services(request).apps.config(app_param(request)))


async def change_config(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    to_set = body.get("set", {})
    to_unset = body.get("unset", [])
    if not isinstance(to_set, dict) or not isinstance(to_unset, list):
        raise BerthError("expected {'set': {KEY: VALUE}, 'unset': [KEY]}")
    for key, value in to_set.items():
        check_config_key(str(key))
        if not isinstance(value, str):
            raise BerthError(f"the value of {key} must be a string")
    config = s.apps.config(name)
    missing = [k for k in to_unset if k not in config]
    if missing:
        raise BerthError(f"{name} has no config var {missing[0]!r}")
    config.update(to_set)
    for key in to_unset:
        config.pop(key)
    changes = []
    if to_set:
        changes.append("Set " + ", ".join(sorted(to_set)))
    if to_unset:
        changes.append("Unset " + ", ".join(sorted(to_unset)))
    if not changes:
        raise BerthError("nothing to change: give KEY=VALUE pairs to set or KEYs to unset")
    described = "; ".join(changes)
    restart = body.get("restart", True) is not False

    async def operation(out: DeployOutput) -> dict[str, Any]:
        if not restart:
            s.apps.replace_config(name, config)
            s.events.record(name, "ConfigChanged", described + " (no restart)")
            out.heading(f"{described}; not restarted (takes effect on the next release)")
            return {"release": None}
        release = await s.deployer.release_config(name, config, described, out)
        if release is None:
            out.heading(f"{described}; {name} is not deployed yet, nothing to restart")
        return {"release": release.number if release else None}

    return stream_operation(request, operation)


# domains -------------------------------------------------------------------------------


async def list_domains(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    return JSONResponse({"domains": s.deployer.hosts(name), "custom": s.apps.domains(name)})


async def add_domain(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    domain = check_domain(str((await json_body(request)).get("domain", "")))
    if s.config.deploy.domain and domain == f"{name}.{s.config.deploy.domain}":
        raise Conflict(f"{domain} is already {name}'s default domain")
    s.apps.add_domain(name, domain)
    s.events.record(name, "DomainAdded", domain)
    await s.deployer.refresh_routing(name)
    return JSONResponse({"domains": s.deployer.hosts(name)}, status_code=201)


async def remove_domain(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    domain = request.path_params["domain"]
    s.apps.remove_domain(name, domain)
    s.events.record(name, "DomainRemoved", domain)
    await s.deployer.refresh_routing(name)
    return JSONResponse({"domains": s.deployer.hosts(name)})


# storage -------------------------------------------------------------------------------


def _storage(s: Services, name: str) -> dict[str, Any]:
    root = s.config.paths.storage
    return {"mounts": [{"path": path, "host": str(storage.host_dir(root, name, path))}
                       for path in s.apps.mounts(name)]}


async def list_storage(request: Request) -> Response:
    s = services(request)
    return JSONResponse(_storage(s, app_param(request)))


async def change_storage(request: Request) -> Response:
    """Mount (POST) or unmount (DELETE) a container path, then restart the live release
    with zero downtime unless told not to; a failed restart undoes the change."""
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    path = storage.check_mount_path(str(body.get("path", "")))
    mount = request.method == "POST"
    restart = body.get("restart", True) is not False
    if mount:
        s.apps.add_mount(name, path)
    else:
        s.apps.remove_mount(name, path)

    def undo() -> None:
        try:
            if mount:
                s.apps.remove_mount(name, path)
            else:
                s.apps.add_mount(name, path)
        except BerthError:  # changed again meanwhile: leave that change be
            pass

    async def operation(out: DeployOutput) -> dict[str, Any]:
        if mount:
            out.heading(f"{path} of {name} is kept in {storage.host_dir(s.config.paths.storage, name, path)}")
        else:
            out.heading(f"{path} of {name} is no longer mounted (its data stays on disk)")
        deployed = s.releases.live(name) is not None
        if restart and deployed and not s.apps.get(name).stopped:
            try:
                await s.deployer.restart(name, out)
            except BaseException:
                undo()
                raise
        elif deployed:
            out.heading(f"Takes effect at the next deploy or berth ps:restart {name}")
        s.events.record(name, "StorageMounted" if mount else "StorageUnmounted", path)
        return _storage(s, name)

    return stream_operation(request, operation)


# processes -----------------------------------------------------------------------------


def _instance_row(container: Container, now: float, stopping: bool) -> dict[str, Any]:
    instance = container.instance
    return {
        "dyno": instance.dyno if instance else container.name,
        "process": instance.process if instance else "",
        "release": container.release,
        # Out of the route already, exiting: not one of the app's running instances.
        "state": "stopping" if stopping and container.running else container.state,
        "uptime": round(now - container.started_at) if container.running and container.started_at else None,
        "restarts": container.restart_count,
        "port": container.host_port,
        "container": container.name,
    }


async def list_processes(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    app = s.apps.get(name)
    containers = [c for c in await s.runtime.containers(name) if c.role == "process"]
    now = time.time()
    stopping = s.deployer.stopping(name)
    rows = sorted((_instance_row(c, now, c.id in stopping) for c in containers),
                  key=lambda r: (r["process"], r["dyno"]))
    return JSONResponse({"formation": dict(app.formation), "stopped": app.stopped,
                         "instances": rows})


async def scale(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    changes: dict[str, int] = {}
    for process, count in body.items():
        check_process_type(str(process))
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100:
            raise BerthError(f"{process}: the count must be an integer from 0 to 100")
        changes[str(process)] = count
    if not changes:
        raise BerthError("nothing to scale: give TYPE=COUNT, e.g. web=2")

    async def operation(out: DeployOutput) -> dict[str, Any]:
        formation = await s.deployer.scale(name, changes, out)
        out.heading("Scaled to " + " ".join(f"{k}={v}" for k, v in sorted(formation.items())))
        return {"formation": formation}

    return stream_operation(request, operation)


async def process_action(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    action = request.path_params["action"]
    s.apps.get(name)
    run = {"restart": s.deployer.restart, "stop": s.deployer.stop, "start": s.deployer.start}
    if action not in run:
        raise BerthError(f"unknown action {action!r}")

    async def operation(out: DeployOutput) -> dict[str, Any]:
        await run[action](name, out)
        out.heading(f"{name}: {action} done")
        return {"done": action}

    return stream_operation(request, operation)


async def run_one_off(request: Request) -> Response:
    """`berth run`: a command in a one-off container of the live release; its output
    streams back, then its exit status. Hanging up stops it."""
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    command = (await json_body(request)).get("command")
    if not isinstance(command, str):
        raise BerthError("command must be a string")

    async def operation(out: DeployOutput) -> dict[str, Any]:
        return {"exit_code": await s.deployer.run_one_off(name, command, out)}

    return stream_operation(request, operation, may_cancel=lambda: True)


async def run_with_terminal(websocket: WebSocket) -> None:
    """`berth run` from a terminal, over a WebSocket: binary frames are keystrokes in and
    the container's terminal out; the client's text frames `{"size": [columns, rows]}`
    resize it; the last frame is `{"exit": status}` or `{"error": message}`. The
    container is removed when the command exits or the client goes away."""
    await websocket.accept()
    try:
        s: Services = websocket.app.state.services
        name = check_app(websocket.path_params["app"])
        size = _terminal_size(websocket.query_params.get("columns", "80"),
                              websocket.query_params.get("rows", "24"))
        code = await s.deployer.run_attached(
            name, websocket.query_params.get("command", ""), size, _WebSocketTerminal(websocket))
    except BerthError as exc:
        await _say_last(websocket, {"error": str(exc).splitlines()[0]})
        return
    except WebSocketDisconnect:
        return
    await _say_last(websocket, {"exit": code})  # unheard if the client has gone


class _WebSocketTerminal:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive(self) -> bytes | tuple[int, int] | None:
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if message.get("bytes") is not None:
                return bytes(message["bytes"])
            try:
                columns, rows = json.loads(message.get("text") or "{}")["size"]
                return _terminal_size(str(columns), str(rows))
            except (ValueError, KeyError, TypeError, BerthError):
                continue  # not a size: ignored

    async def send(self, data: bytes) -> None:
        await self._websocket.send_bytes(data)


def _terminal_size(columns: str, rows: str) -> tuple[int, int]:
    if not (columns.isdigit() and rows.isdigit() and 0 < int(columns) < 10000
            and 0 < int(rows) < 10000):
        raise BerthError(f"bad terminal size {columns}x{rows}")
    return int(columns), int(rows)


async def _say_last(websocket: WebSocket, message: dict[str, Any]) -> None:
    try:
        await websocket.send_json(message)
    except (WebSocketDisconnect, RuntimeError):
        return
    await _close(websocket)


async def _close(websocket: WebSocket) -> None:
    try:
        await websocket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass


async def logs(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    follow = request.query_params.get("follow") == "1"
    try:
        lines = int(request.query_params.get("lines", "100"))
    except ValueError:
        raise BerthError("lines must be a number") from None
    process = request.query_params.get("process") or None
    containers = [c for c in await s.runtime.containers(name) if c.role == "process"]
    if process is not None:
        containers = [c for c in containers if c.instance and c.instance.process == process]
    live = s.releases.live(name)
    if live is not None:
        # Old instances still draining would repeat lines; show the live release's.
        containers = [c for c in containers if c.release == live.number] or containers

    # What removed instances (earlier releases, restarts, crashes) last said comes
    # first: all of it is older than the running instances' lines, save the last
    # moments of an old instance still draining (shown in time order when not following).
    earlier = (await asyncio.to_thread(s.history.tail, name, max(0, lines), process)
               if s.history else [])

    async def ordered() -> AsyncIterator[LogLine]:
        current = s.runtime.logs(containers, follow=follow, tail=max(0, lines))
        if follow:
            for line in sorted(earlier, key=lambda line: line.time):
                yield line
            async for line in current:
                yield line
            return
        merged = sorted(earlier + [line async for line in current], key=lambda line: line.time)
        for line in merged[-lines:] if lines > 0 else []:
            yield line

    async def body() -> AsyncIterator[bytes]:
        async for line in ordered():
            yield event(time=line.time, source=line.source, text=line.text)

    return StreamingResponse(body(), media_type=MEDIA_TYPE)


# releases ------------------------------------------------------------------------------


def _release_row(release: Release) -> dict[str, Any]:
    return {
        "version": release.number,
        "state": release.state.value,
        "description": release.description,
        "created_at": release.created_at,
        "finished_at": release.finished_at,
        "git_sha": release.git_sha,
        "builder": release.builder,
        "processes": dict(release.processes),
        "error": release.error,
    }


async def list_releases(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    return JSONResponse([_release_row(r) for r in s.releases.recent(name)])


async def release_info(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    number = _version(request.path_params["version"])
    release = s.releases.get(name, number)
    row = _release_row(release)
    row["config_keys"] = sorted(release.config)
    row["log"] = s.releases.log(name, number)
    return JSONResponse(row)


def _version(text: str) -> int:
    digits = text[1:] if text.startswith("v") else text
    if not digits.isdigit():
        raise BerthError(f"invalid release {text!r}: expected vN or N")
    return int(digits)


async def rollback(request: Request) -> Response:
    s = services(request)
    name = app_param(request)
    body = await json_body(request)
    version = body.get("version")
    number = _version(str(version)) if version is not None else None
    s.apps.get(name)

    async def operation(out: DeployOutput) -> dict[str, Any]:
        release = await s.deployer.rollback(name, number, out)
        return {"release": release.number}

    return stream_operation(request, operation)


# receiving a push ----------------------------------------------------------------------


async def receive_push(request: Request) -> Response:
    """The pre-receive hook posts the pushed tree (git archive) and streams the deploy."""
    s = services(request)
    name = app_param(request)
    sha = request.query_params.get("sha", "")
    if len(sha) not in (40, 64) or any(c not in "0123456789abcdef" for c in sha):
        raise BerthError("sha must be a full hexadecimal commit id")
    s.apps.get(name)
    workdir = _workdir(s, name, sha)
    try:
        await _receive_tree(request, workdir, s.config.deploy.max_push_bytes)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _deploy_tree(request, s, name, sha, workdir, "Deploy")


async def rebuild(request: Request) -> Response:
    """ps:rebuild: build the live release's commit again from the app's repository
    (new base images, buildpack changes, build-time config) and release it."""
    s = services(request)
    name = app_param(request)
    s.apps.get(name)
    live = s.releases.live(name)
    if live is None or not live.git_sha:
        raise NothingToRelease(name)
    workdir = _workdir(s, name, live.git_sha)
    try:
        await asyncio.to_thread(_export_tree, s.config.paths.repo(name), live.git_sha,
                                workdir, s.config.deploy.max_push_bytes)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return _deploy_tree(request, s, name, live.git_sha, workdir, "Rebuild")


def _workdir(s: Services, name: str, sha: str) -> Path:
    builds = s.config.paths.builds
    builds.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-{sha[:8]}-", dir=builds))


def _deploy_tree(
    request: Request, s: Services, name: str, sha: str, workdir: Path, description: str
) -> Response:
    """Deploy the tree in workdir/src, streamed; cancellable until the swap; workdir
    removed at the end."""
    committed = False

    def commit() -> None:
        nonlocal committed
        committed = True

    async def operation(out: DeployOutput) -> dict[str, Any]:
        try:
            release = await s.deployer.deploy_push(name, sha, workdir / "src", out,
                                                   committed=commit, description=description)
            return {"release": release.number}
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    return stream_operation(request, operation, may_cancel=lambda: not committed)


async def _receive_tree(request: Request, workdir: Path, limit: int) -> None:
    archive = workdir / "push.tar"
    size = 0
    with archive.open("wb") as sink:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BerthError(f"the pushed tree is larger than {limit // (1024 * 1024)} MiB "
                                 "(deploy.max_push_bytes)")
            sink.write(chunk)
    await asyncio.to_thread(_extract, archive, workdir, limit)


def _export_tree(repo: Path, sha: str, workdir: Path, limit: int) -> None:
    """`git archive` of `sha` from the app's repository into workdir/src (as root, in a
    repository the berth user owns: git is told it is safe)."""
    archive = workdir / "push.tar"
    with archive.open("wb") as sink:
        result = subprocess.run(
            ["git", "-c", f"safe.directory={repo}", "--git-dir", str(repo), "archive",
             "--format=tar", sha], stdout=sink, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BerthError(f"cannot read {sha[:7]} from {repo}: {reason[-1] if reason else 'git failed'}")
    _extract(archive, workdir, limit)


def _extract(archive: Path, workdir: Path, limit: int) -> None:
    with archive.open("rb") as source:
        unpack(source, workdir / "src", max_bytes=limit)
    archive.unlink()


def routes() -> list[BaseRoute]:
    return [
        Route("/apps", list_apps, methods=["GET"]),
        Route("/apps", create_app, methods=["POST"]),
        Route("/apps/{app}", app_info, methods=["GET"]),
        Route("/apps/{app}", destroy_app, methods=["DELETE"]),
        Route("/apps/{app}/repo", ensure_app_repo, methods=["POST"]),
        Route("/apps/{app}/settings", set_app_settings, methods=["PATCH"]),
        Route("/apps/{app}/config", get_config, methods=["GET"]),
        Route("/apps/{app}/config", change_config, methods=["POST"]),
        Route("/apps/{app}/domains", list_domains, methods=["GET"]),
        Route("/apps/{app}/domains", add_domain, methods=["POST"]),
        Route("/apps/{app}/domains/{domain}", remove_domain, methods=["DELETE"]),
        Route("/apps/{app}/ps", list_processes, methods=["GET"]),
        Route("/apps/{app}/ps/scale", scale, methods=["POST"]),
        Route("/apps/{app}/ps/rebuild", rebuild, methods=["POST"]),
        Route("/apps/{app}/ps/{action}", process_action, methods=["POST"]),
        Route("/apps/{app}/run", run_one_off, methods=["POST"]),
        WebSocketRoute("/apps/{app}/run/attach", run_with_terminal),
        Route("/apps/{app}/storage", list_storage, methods=["GET"]),
        Route("/apps/{app}/storage", change_storage, methods=["POST", "DELETE"]),
        Route("/apps/{app}/logs", logs, methods=["GET"]),
        Route("/apps/{app}/releases", list_releases, methods=["GET"]),
        Route("/apps/{app}/releases/{version}", release_info, methods=["GET"]),
        Route("/apps/{app}/rollback", rollback, methods=["POST"]),
        Route("/apps/{app}/deploys", receive_push, methods=["POST"]),
    ]