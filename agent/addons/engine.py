"""The Docker engine as add-ons need it (docker-py, blocking, in threads).

Add-on containers carry labels of their own (`berth.addon.*`), not the deploy's, so the
deploy reconciler never takes them for an app's leftovers. They join the app's network
under their container name and publish no port. Every docker-py error leaves this module
as `AddonEngineFailure`.

A command run inside an add-on (`exec`) has a deadline twice over: inside the container
it runs under the image's own `timeout` (GNU coreutils' or busybox's, found once per
image: `agent.addons.deadlines`), which kills it there; on this side every read of its output waits at most
until that deadline and a grace after it, and on expiry the socket is closed and the
command is killed from the host, so neither a stuck command nor a silent engine holds a
thread (or a backup scheduler) forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
from docker.types import LogConfig
from docker.utils.socket import STDOUT

from agent.addons import deadlines
from agent.addons.containers import LABEL_APP, LABEL_MANAGED, LABEL_NAME, AddonContainer
from agent.deploy.docker_engine import explain, restart_policy
from agent.deploy.networks import NetworkFailure, ensure_app_network
from agent.errors import BerthError

log = logging.getLogger(__name__)

_STDERR_KEPT = 64 * 1024
_NETWORK_ATTEMPTS = 5
# Seconds the agent waits past the in-container deadline before it gives up itself.
EXEC_GRACE = 5.0
# The exit statuses of a command `timeout -s KILL` ended (GNU: 137; some report 124).
KILLED_STATUSES = (124, 137)
# At most this many processes of a container are looked at for a signal.
_DESCENDANTS_READ = 4096


class AddonEngineFailure(BerthError):
    status = 502

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(f"docker: {action}: {detail}")


class ExecTimedOut(AddonEngineFailure):
    """A command in an add-on ran past its deadline and was killed."""

    def __init__(self, container: str, program: str, seconds: float) -> None:
        super().__init__(f"run {program} in {container}",
                         f"did not finish within {seconds:g} s (killed)")
        self.container, self.program, self.seconds = container, program, seconds


@dataclass(frozen=True)
class ExecResult:
    status: int
    stdout: bytes  # empty when it went to a file
    stderr: bytes


class AddonEngine:
    def __init__(self, client: docker.DockerClient, installation: str) -> None:
        self._api = client.api
        self.installation = installation
        self._flavours: dict[str, deadlines.Flavour] = {}  # image id: its `timeout`

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

    async def exec(self, name: str, argv: Sequence[str], *, timeout: float,
                   env: Mapping[str, str] | None = None, user: str = "",
                   stdout: BinaryIO | None = None) -> ExecResult:
        """Run `argv` in the running container, killed after `timeout` seconds
        (`ExecTimedOut`); its stdout into `stdout` when given (streamed, never whole in
        memory), else returned."""
        return await asyncio.to_thread(self._exec, name, argv, env or {}, user, stdout, timeout)

    def _exec(self, name: str, argv: Sequence[str], env: Mapping[str, str], user: str,
              sink: BinaryIO | None, timeout: float) -> ExecResult:
        started = time.monotonic()
        try:
            flavour = self._flavour(name)
            status, out, err = self._run_exec(
                name, deadlines.bounded(argv, timeout, flavour), env, user, sink,
                started + timeout + EXEC_GRACE, flavour)
        except TimeoutError:
            raise ExecTimedOut(name, argv[0], timeout) from None
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"run {argv[0]} in {name}", explain(exc)) from exc
        if status in KILLED_STATUSES and time.monotonic() - started >= timeout:
            raise ExecTimedOut(name, argv[0], timeout)
        return ExecResult(status, bytes(out), bytes(err))

    def _run_exec(self, name: str, command: list[str], env: Mapping[str, str], user: str,
                  sink: BinaryIO | None, deadline: float, flavour: deadlines.Flavour
                  ) -> tuple[int, bytearray, bytearray]:
        """Status, stdout and stderr's head of `command`; `TimeoutError` (the command
        killed from the host) when its output is still open at `deadline`."""
        created = self._api.exec_create(name, command, environment=dict(env), user=user,
                                        stdout=True, stderr=True)
        sock = self._api.exec_start(created["Id"], socket=True)
        try:
            out, err = _read_frames(getattr(sock, "_sock", sock), sink, deadline)
        except TimeoutError:
            self._kill_exec(created["Id"], name, flavour)
            raise
        finally:
            getattr(sock, "_sock", sock).close()
            sock.close()
        status = self._api.exec_inspect(created["Id"]).get("ExitCode")
        return (status if isinstance(status, int) else -1), out, err

    def _flavour(self, name: str) -> deadlines.Flavour:
        """Which `timeout` the container's image has, found once per image."""
        image = str(self._api.inspect_container(name)["Image"])
        if image not in self._flavours:
            self._flavours[image] = self._probe(name)
        return self._flavours[image]

    def _probe(self, name: str) -> deadlines.Flavour:
        for flavour in deadlines.FLAVOURS:
            try:
                status, _, _ = self._run_exec(
                    name, deadlines.probe(flavour), {}, "", None,
                    time.monotonic() + deadlines.PROBE_SECONDS + EXEC_GRACE, flavour)
            except TimeoutError:
                continue
            if status == 0:
                log.info("timeout found container=%s flavour=%s", name, flavour)
                return flavour
        raise AddonEngineFailure(
            f"run commands in {name}", "its image has neither GNU coreutils' nor busybox's "
            "`timeout`, which every command in an add-on runs under")

    async def signal_processes(self, name: str, title: str, signum: int) -> list[int]:
        """Send `signum` to the processes in the container whose command line starts
        with `title` (the process title a server gives a worker it forked); their host
        pids. Nothing running, nothing sent."""
        return await asyncio.to_thread(self._signal_processes, name, title, signum)

    def _signal_processes(self, name: str, title: str, signum: int) -> list[int]:
        try:
            init = int(self._api.inspect_container(name)["State"]["Pid"] or 0)
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"inspect {name}", explain(exc)) from exc
        sent = []
        for pid in _descendants(init) if init else []:
            if _title(pid).startswith(title):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    continue
                sent.append(pid)
        return sent

    def start_terminal_exec(self, name: str, argv: Sequence[str], *, user: str,
                            env: Mapping[str, str], size: tuple[int, int], timeout: float
                            ) -> tuple[str, socket.socket]:
        """`argv` started in the running container with a terminal of `size` (columns,
        rows), killed there after `timeout`; its exec id and the socket that carries
        its terminal both ways (raw bytes). Blocking."""
        try:
            command = deadlines.bounded(argv, timeout, self._flavour(name))
            created = self._api.exec_create(name, command, stdin=True, tty=True,
                                            environment=dict(env), user=user)
            attached = self._api.exec_start(created["Id"], socket=True, tty=True)
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"run {argv[0]} in {name}", explain(exc)) from exc
        raw: socket.socket = getattr(attached, "_sock", attached)
        if attached is not raw:
            attached.close()  # docker-py's file view of it: without it, raw.close() closes
        raw.settimeout(None)  # a client may sit at its prompt for as long as it likes
        self.resize_exec(created["Id"], size)
        return created["Id"], raw

    def resize_exec(self, exec_id: str, size: tuple[int, int]) -> None:
        columns, rows = size
        try:
            self._api.exec_resize(exec_id, height=rows, width=columns)
        except docker.errors.DockerException as exc:
            log.info("terminal resize refused exec=%s error=%s", exec_id[:12], exc)

    def exec_status(self, exec_id: str) -> int | None:
        """The command's exit status, None while it runs."""
        try:
            found = self._api.exec_inspect(exec_id)
        except docker.errors.DockerException as exc:
            raise AddonEngineFailure(f"inspect {exec_id[:12]}", explain(exc)) from exc
        status = found.get("ExitCode")
        return None if found.get("Running") or not isinstance(status, int) else status

    def kill_exec(self, exec_id: str, name: str) -> None:
        """The command killed from the host, alone (see `_kill_exec`)."""
        self._kill_exec(exec_id, name, self._flavour(name))

    def _kill_exec(self, exec_id: str, name: str, flavour: deadlines.Flavour) -> None:
        """The command killed from the host (the engine's processes are this host's),
        alone (`deadlines.victims`). A failure is logged; the caller's error stands."""
        try:
            pid = int(self._api.exec_inspect(exec_id).get("Pid") or 0)
            children = [int(c) for c in
                        Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (docker.errors.DockerException, OSError, ValueError) as exc:
            log.error("timed-out command not killed container=%s error=%s", name, exc)
            return
        killed = deadlines.victims(flavour, pid, children)
        for victim in killed:
            try:
                os.kill(victim, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
        log.warning("command killed after its deadline container=%s pids=%s", name,
                    ",".join(map(str, killed)) or "none")


def _descendants(pid: int) -> list[int]:
    """Every process under `pid` (read from /proc: the engine's processes are this
    host's), children before their own children."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < _DESCENDANTS_READ:
        parent = queue.pop(0)
        for tasks in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(c) for c in tasks.read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            queue += children
    return found


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except OSError:
        return ""


def _read_frames(raw: socket.socket, sink: BinaryIO | None, deadline: float
                 ) -> tuple[bytearray, bytearray]:
    """stdout (unless it went to `sink`) and the head of stderr of an exec's socket
    (Docker's multiplexed frames: stream, 3 zero bytes, big-endian length, payload);
    `TimeoutError` when it is still open at `deadline`."""
    out, err = bytearray(), bytearray()
    while True:
        header = _receive(raw, 8, deadline)
        if len(header) < 8:
            return out, err
        stream, length = header[0], struct.unpack(">I", header[4:])[0]
        data = _receive(raw, length, deadline)
        if stream == STDOUT:
            if sink is not None:
                sink.write(data)
            else:
                out += data
        elif len(err) < _STDERR_KEPT:
            err += data[:_STDERR_KEPT - len(err)]
        if len(data) < length:
            return out, err


def _receive(raw: socket.socket, size: int, deadline: float) -> bytes:
    """Up to `size` bytes (fewer at the end of the stream), each wait bounded by
    `deadline`."""
    chunks = bytearray()
    while len(chunks) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        raw.settimeout(remaining)
        chunk = raw.recv(min(size - len(chunks), 1 << 16))  # TimeoutError at the deadline
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)
