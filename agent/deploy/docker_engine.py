"""What every Docker adapter module shares: the error, and engine answers as Berth values.

docker-py is blocking; the adapter modules call it through `asyncio.to_thread`. Every
docker-py error leaves them as `RuntimeFailure`. `EngineClient` holds the client and this
installation's id, and removes containers (the one operation every adapter needs).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from agent.deploy.oomlog import OomKills
from agent.deploy.runtime import Container
from agent.errors import BerthError
from agent.limits import Limits

LABEL_HOST_PORT = "berth.host-port"


class RuntimeFailure(BerthError):
    """The container engine refused or failed an operation."""

    status = 502

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(f"docker: {action}: {detail}")
        self.action = action
        self.detail = detail


def explain(exc: docker.errors.DockerException) -> str:
    """The engine's own words for a failure."""
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


def installation_id(data_dir: Path) -> str:
    """A stable id for one Berth installation (its data directory)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def restart_policy(policy: str) -> dict[str, Any]:
    """Docker's RestartPolicy for `no`, `always`, `unless-stopped`, `on-failure[:N]`."""
    name, _, count = policy.partition(":")
    result: dict[str, Any] = {"Name": "" if name == "no" else name}
    if name == "on-failure" and count:
        result["MaximumRetryCount"] = int(count)
    return result


def parse_time(text: str) -> float | None:
    """An engine timestamp (RFC 3339, nanoseconds) as epoch seconds; None if unset."""
    if not text or text.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python parses microseconds.
    head, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")[:6]
    try:
        return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00").timestamp()
    except ValueError:
        return None


def container_from(attrs: dict[str, Any]) -> Container:
    """A `Container` from the engine's inspection of it."""
    state = attrs.get("State", {})
    labels = attrs.get("Config", {}).get("Labels") or {}
    host_port = None
    bindings = (attrs.get("HostConfig", {}).get("PortBindings") or {})
    for binding in bindings.values():
        for entry in binding or []:
            if entry.get("HostPort", "").isdigit():
                host_port = int(entry["HostPort"])
    return Container(
        id=attrs["Id"],
        name=attrs.get("Name", "").lstrip("/"),
        state=state.get("Status", "unknown"),
        labels=labels,
        host_port=host_port,
        started_at=parse_time(state.get("StartedAt", "")),
        restart_count=int(attrs.get("RestartCount", 0)),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        pid=state.get("Pid") or None,
        memory_limit=attrs.get("HostConfig", {}).get("Memory") or None,
    )


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from a stream of byte chunks (a last unterminated line included)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def consume(task: asyncio.Future[Any]) -> None:
    """Done callback: retrieve a left-behind task's outcome so it is never reported."""
    if not task.cancelled():
        task.exception()


class EngineClient:
    """The Docker client and this installation's id, shared by the adapter's parts."""

    def __init__(
        self, client: docker.DockerClient, installation: str,
        limits: Callable[[str, str], Limits] | None = None, oom: OomKills | None = None,
        build_steps: Path | None = None,
    ) -> None:
        self._client = client
        self._api = client.api
        self._installation = installation
        # (app, process type or role) -> its containers' limits (agent.store.limits)
        self._limits = limits or (lambda app, process: Limits())
        self._oom = oom  # the kernel's OOM kills, where the engine reports none
        self._build_steps = build_steps  # builds' records of step images (agent.build.steplog)

    @property
    def installation(self) -> str:
        return self._installation

    def _force_remove(self, reference: str) -> None:
        """Remove a container by id or name, running or not; gone already is fine."""
        try:
            self._api.remove_container(reference, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"remove {reference[:12]}", explain(exc)) from exc
