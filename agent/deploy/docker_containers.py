"""Berth's long-running containers in the Docker engine: create, start, list, stop, remove.

Containers are created with Docker's init (tini) so signals reach the app, json-file logs
rotated by size and count, and the web port published on 127.0.0.1 only. Only containers
labelled with this installation's id are listed or touched.
"""

from __future__ import annotations

import asyncio

import docker
import docker.errors
from docker.types import LogConfig

from agent.deploy.docker_engine import (
    LABEL_HOST_PORT,
    EngineClient,
    RuntimeFailure,
    container_from,
    explain,
    restart_policy,
)
from agent.deploy.networks import NetworkFailure, ensure_app_network, remove_app_network
from agent.deploy.plan import LABEL_APP, LABEL_MANAGED, LABEL_PROCESS, LABEL_ROLE, ContainerSpec
from agent.deploy.runtime import Container
from agent.errors import BerthError
from agent.limits import Limits, engine_limits


class ContainerLifecycle(EngineClient):
    """Creates, starts, lists, stops and removes containers."""

    async def start(self, spec: ContainerSpec) -> Container:
        return await asyncio.to_thread(self._start, spec)

    async def create(self, spec: ContainerSpec) -> str:
        return await asyncio.to_thread(self._create, spec)

    async def start_created(self, spec: ContainerSpec, container_id: str) -> Container:
        return await asyncio.to_thread(self._run_created, spec, container_id)

    def _start(self, spec: ContainerSpec) -> Container:
        return self._run_created(spec, self._create(spec))

    def _create(self, spec: ContainerSpec) -> str:
        # The low-level calls: create, start, one inspection (the high-level
        # `containers.create` inspects after creating too, a wasted round trip per deploy).
        published = spec.publish_port is not None
        network = self._join_network(spec)
        host_config = self._api.create_host_config(
            port_bindings={spec.container_port: ("127.0.0.1", spec.publish_port)} if published else None,
            restart_policy=restart_policy(spec.restart_policy),
            log_config=_log_config(spec),
            init=True,
            binds={host: {"bind": path, "mode": "rw"} for host, path in spec.mounts} or None,
            network_mode=network,
            **engine_limits(self._limits_of(spec)),
        )
        try:
            created = self._api.create_container(
                spec.image,
                command=list(spec.command) or None,
                name=spec.name,
                environment=dict(spec.env),
                labels=self._labels(spec),
                ports=[spec.container_port] if published else None,
                host_config=host_config,
                tty=spec.tty,
                stdin_open=spec.tty,
                networking_config=self._api.create_networking_config(
                    {network: self._api.create_endpoint_config(aliases=list(spec.aliases))}),
            )
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"create {spec.name}", explain(exc)) from exc
        container_id = str(created["Id"])
        if spec.code is not None:
            self._put_code(spec, container_id)
        return container_id

    def _limits_of(self, spec: ContainerSpec) -> Limits:
        """An instance's by its process type; a one-off's by its role (release, run)."""
        process = spec.labels.get(LABEL_PROCESS) or spec.labels.get(LABEL_ROLE, "")
        try:
            return self._limits(spec.labels[LABEL_APP], process)
        except BerthError as exc:
            raise RuntimeFailure(f"create {spec.name}", str(exc)) from exc

    def _join_network(self, spec: ContainerSpec) -> str:
        """The app's own network (made if missing) for the container to join."""
        try:
            return ensure_app_network(self._api, spec.labels[LABEL_APP], self._installation)
        except NetworkFailure as exc:
            raise RuntimeFailure(f"create {spec.name}", str(exc)) from exc

    def _put_code(self, spec: ContainerSpec, container_id: str) -> None:
        assert spec.code is not None
        try:
            with spec.code.open("rb") as code:  # streamed, never whole in memory
                if not self._api.put_archive(container_id, spec.code_dir, code):
                    raise docker.errors.DockerException("the engine refused the archive")
        except (docker.errors.DockerException, OSError) as exc:
            self._force_remove(container_id)
            detail = explain(exc) if isinstance(exc, docker.errors.DockerException) else str(exc)
            raise RuntimeFailure(f"put the code into {spec.name}", detail) from exc

    def _run_created(self, spec: ContainerSpec, container_id: str) -> Container:
        try:
            self._api.start(container_id)
            return container_from(self._api.inspect_container(container_id))
        except docker.errors.DockerException as exc:
            self._force_remove(container_id)
            raise RuntimeFailure(f"start {spec.name}", explain(exc)) from exc

    def _labels(self, spec: ContainerSpec) -> dict[str, str]:
        labels = {**spec.labels, LABEL_MANAGED: self._installation}
        if spec.publish_port is not None:
            labels[LABEL_HOST_PORT] = str(spec.publish_port)
        return labels

    async def containers(self, app: str | None = None) -> list[Container]:
        return await asyncio.to_thread(self._containers, app)

    def _containers(self, app: str | None) -> list[Container]:
        filters = [f"{LABEL_MANAGED}={self._installation}"]
        if app is not None:
            filters.append(f"{LABEL_APP}={app}")
        try:
            summaries = self._api.containers(all=True, filters={"label": filters})
            result = []
            for summary in summaries:
                try:
                    result.append(container_from(self._api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:
                    continue  # removed between the listing and the inspection
            return result
        except docker.errors.DockerException as exc:
            raise RuntimeFailure("list containers", explain(exc)) from exc

    async def published_ports(self) -> set[int]:
        """Host ports of this installation's containers (one listing, no inspections)."""
        return await asyncio.to_thread(self._published_ports)

    def _published_ports(self) -> set[int]:
        try:
            summaries = self._api.containers(
                all=True, filters={"label": [f"{LABEL_MANAGED}={self._installation}"]})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure("list containers", explain(exc)) from exc
        ports = set()
        for summary in summaries:
            for port in summary.get("Ports") or []:
                if port.get("PublicPort"):
                    ports.add(int(port["PublicPort"]))
            labels = summary.get("Labels") or {}
            # A stopped container's binding is not listed, but it would take the port back
            # when it starts: keep the port it was given.
            if labels.get(LABEL_HOST_PORT, "").isdigit():
                ports.add(int(labels[LABEL_HOST_PORT]))
        return ports

    async def get(self, container_id: str) -> Container | None:
        try:
            return container_from(await asyncio.to_thread(self._api.inspect_container, container_id))
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect {container_id[:12]}", explain(exc)) from exc

    async def stop(self, container_id: str, timeout: float) -> None:
        await asyncio.to_thread(self._stop, container_id, timeout)

    def _stop(self, container_id: str, timeout: float) -> None:
        try:
            self._api.stop(container_id, timeout=max(0, int(timeout)))
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"stop {container_id[:12]}", explain(exc)) from exc

    async def start_existing(self, container_id: str) -> None:
        try:
            await asyncio.to_thread(self._api.start, container_id)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"start {container_id[:12]}", explain(exc)) from exc

    async def remove_network(self, app: str) -> None:
        """The app's network, once nothing is on it (kept, and logged, while it is)."""
        await asyncio.to_thread(remove_app_network, self._api, app)

    async def remove(self, container_id: str, timeout: float) -> None:
        """SIGTERM, up to `timeout` seconds of grace, SIGKILL, then remove."""
        await self.stop(container_id, timeout)
        await asyncio.to_thread(self._force_remove, container_id)


def _log_config(spec: ContainerSpec) -> LogConfig:
    """Instances: json-file logs, rotated. One-offs (release phase, run): none kept; their
    output is read from the attached stream, whole, and never written to disk."""
    if spec.labels.get(LABEL_ROLE) in ("release", "run"):
        return LogConfig(type=LogConfig.types.NONE)
    return LogConfig(type=LogConfig.types.JSON,
                     config={"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)})
