"""The Docker engine as add-ons need it (docker-py, blocking, in threads).

Add-on containers carry labels of their own (`berth.addon.*`), not the deploy's, so the
deploy reconciler never takes them for an app's leftovers. They join the app's network
under their container name and publish no port. Every docker-py error leaves this module
as `AddonEngineFailure`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, BinaryIO, Mapping, Sequence

import docker
import docker.errors
from docker.types import LogConfig
from docker.utils.socket import STDOUT, frames_iter

from agent.addons.containers import LABEL_APP, LABEL_MANAGED, LABEL_NAME, AddonContainer
from agent.deploy.docker_engine import explain, restart_policy
from agent.deploy.networks import NetworkFailure, ensure_app_network
from agent.errors import BerthError

_STDERR_KEPT = 64 * 1024
_NETWORK_ATTEMPTS = 5


class AddonEngineFailure(BerthError):
    status = 502

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(f"docker: {action}: {detail}")


@dataclass(frozen=True)
class ExecResult:
    status: int
    stdout: bytes  # empty when it went to a file
    stderr: bytes


class AddonEngine:
    def __init__(self, client: docker.DockerClient, installation: str) -> None:
        self._api = client.api
        self.installation = installation

    async def ensure_network(self, app: str) -> str:
        """The app's own network (agent.deploy.networks), made if missing; its name.
        A range taken by another engine client between the pick and the creation is
        retried with the next free one."""
        for attempt in range(_NETWORK_ATTEMPTS):
            try:
                return await asyncio.to_thread(ensure_app_network, self._api, app,
                                               self.installation)
            except NetworkFailure as exc:
                if "overlaps" not in str(exc) or attempt == _NETWORK_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def run(self, spec: AddonContainer) -> None:
        """Create and start the container (a leftover of the same name is replaced)."""
        await asyncio.to_thread(self._run, spec)

    def _run(self, spec: AddonContainer) -> None:
        self._remove(spec.name)
        host_config = self._api.create_host_config(
            restart_policy=restart_policy(spec.restart_policy),
            log_config=LogConfig(type=LogConfig.types.JSON,
                                 config={"max-size": "10m", "max-file": "3"}),
            binds={host: {"bind": path, "mode": mode} for host, path, mode in spec.binds},
            network_mode=spec.network,
        )
        networking = self._api.create_networking_config(
            {spec.network: self._api.create_endpoint_config(aliases=[spec.name])})
        try:
            created = self._api.create_container(
                spec.image, command=list(spec.command), name=spec.name,
                entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                environment=dict(spec.env), labels=dict(spec.labels),
                host_config=host_config, networking_config=networking)
            self._api.start(created["Id"])
        except docker.errors.DockerException as exc:
            self._remove(spec.name)
            raise AddonEngineFailure(f"start {spec.name}", explain(exc)) from exc

    async def state(self, name: str) -> str | None:
        """running, restarting, exited, ...; None when there is no such container."""
        return await asyncio.to_thread(self._state, name)

    def _state(self, name: str) -> str | None:
        try:
            return str(self._api.inspect_container(name)["State"]["Status"])
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"inspect {name}", explain(exc)) from exc

    async def names(self) -> list[tuple[str, str, str]]:
        """(container, app, add-on name) of every add-on container of this installation."""
        return await asyncio.to_thread(self._names)

    def _names(self) -> list[tuple[str, str, str]]:
        try:
            found = self._api.containers(
                all=True, filters={"label": f"{LABEL_MANAGED}={self.installation}"})
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure("list add-on containers", explain(exc)) from exc
        return [((c.get("Names") or ["/"])[0].lstrip("/"), c["Labels"].get(LABEL_APP, ""),
                 c["Labels"].get(LABEL_NAME, "")) for c in found]

    async def start(self, name: str) -> None:
        await self._call(f"start {name}", self._api.start, name)

    async def stop(self, name: str, timeout: float) -> None:
        try:
            await self._call(f"stop {name}", self._api.stop, name, timeout=max(0, int(timeout)))
        except AddonEngineFailure:
            if await self.state(name) is not None:
                raise

    async def remove(self, name: str) -> None:
        await asyncio.to_thread(self._remove, name)

    def _remove(self, name: str) -> None:
        try:
            self._api.remove_container(name, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"remove {name}", explain(exc)) from exc

    async def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(action, explain(exc)) from exc

    async def exec(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   user: str = "", stdout: BinaryIO | None = None) -> ExecResult:
        """Run `argv` in the running container; its stdout into `stdout` when given
        (streamed, never whole in memory), else returned."""
        return await asyncio.to_thread(self._exec, name, argv, env or {}, user, stdout)

    def _exec(self, name: str, argv: Sequence[str], env: Mapping[str, str], user: str,
              sink: BinaryIO | None) -> ExecResult:
        try:
            created = self._api.exec_create(name, list(argv), environment=dict(env),
                                            user=user, stdout=True, stderr=True)
            out, err = bytearray(), bytearray()
            sock = self._api.exec_start(created["Id"], socket=True)
            try:
                for stream, data in frames_iter(sock, tty=False):
                    if stream == STDOUT:
                        if sink is not None:
                            sink.write(data)
                        else:
                            out += data
                    elif len(err) < _STDERR_KEPT:
                        err += data
            finally:
                getattr(sock, "_sock", sock).close()
                sock.close()
            status = self._api.exec_inspect(created["Id"]).get("ExitCode")
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"run {argv[0]} in {name}", explain(exc)) from exc
        return ExecResult(status if isinstance(status, int) else -1, bytes(out), bytes(err))
