"""The Docker engine adapter for running containers (docker-py, blocking, in threads).

Satisfies `agent.deploy.runtime.ContainerRuntime`. Every call to docker-py goes through
`asyncio.to_thread`; every docker-py error leaves this module as `RuntimeFailure`.
Containers are created with Docker's init (tini) so signals reach the app, json-file logs
rotated by size and count, and the web port published on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import socket
import tarfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence

import docker
import docker.errors
from docker.types import LogConfig

from agent.deploy.plan import LABEL_APP, LABEL_MANAGED, ContainerSpec

LABEL_HOST_PORT = "berth.host-port"
from agent.deploy.runtime import Container, LogLine, Terminal
from agent.errors import BerthError

log = logging.getLogger(__name__)


HUNG_UP = 129  # 128 + SIGHUP: a one-off whose terminal went away


class RuntimeFailure(BerthError):
    """The container engine refused or failed an operation."""

    status = 502

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(f"docker: {action}: {detail}")
        self.action = action
        self.detail = detail


def _explain(exc: docker.errors.DockerException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


def restart_policy(policy: str) -> dict[str, Any]:
    """Docker's RestartPolicy for `no`, `always`, `unless-stopped`, `on-failure[:N]`."""
    name, _, count = policy.partition(":")
    result: dict[str, Any] = {"Name": "" if name == "no" else name}
    if name == "on-failure" and count:
        result["MaximumRetryCount"] = int(count)
    return result


def _parse_time(text: str) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python parses microseconds.
    head, _, rest = text.partition(".")
    fraction = rest.rstrip("Z")[:6]
    try:
        return datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00").timestamp()
    except ValueError:
        return None


def _container(attrs: dict[str, Any]) -> Container:
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
        started_at=_parse_time(state.get("StartedAt", "")),
        restart_count=int(attrs.get("RestartCount", 0)),
        exit_code=state.get("ExitCode"),
    )


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Text lines from a stream of byte chunks (a last unterminated line included)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def _offer(queue: "asyncio.Queue[LogLine | None]", item: LogLine | None) -> None:
    """Queue a log line, dropping lines (never end markers) past a bound: a reader
    that does not keep up loses lines instead of growing the agent's memory."""
    if item is None or queue.qsize() < 10_000:
        queue.put_nowait(item)


def installation_id(data_dir: Path) -> str:
    """A stable id for one Berth installation (its data directory)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


class DockerRuntime:
    """Runs, lists, stops and removes Berth's containers through the Docker engine.

    Only containers labelled with this installation's id are listed or touched.
    """

    def __init__(self, client: docker.DockerClient, installation: str) -> None:
        self._client = client
        self._api = client.api
        self._installation = installation

    # lifecycle -----------------------------------------------------------------------

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
        host_config = self._api.create_host_config(
            port_bindings={spec.container_port: ("127.0.0.1", spec.publish_port)} if published else None,
            restart_policy=restart_policy(spec.restart_policy),
            log_config=LogConfig(
                type=LogConfig.types.JSON,
                config={"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)},
            ),
            init=True,
            binds={host: {"bind": path, "mode": "rw"} for host, path in spec.mounts} or None,
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
            )
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"create {spec.name}", _explain(exc)) from exc
        container_id = str(created["Id"])
        if spec.code is not None:
            try:
                with spec.code.open("rb") as code:  # streamed, never whole in memory
                    if not self._api.put_archive(container_id, spec.code_dir, code):
                        raise docker.errors.DockerException("the engine refused the archive")
            except (docker.errors.DockerException, OSError) as exc:
                self._force_remove(container_id)
                detail = _explain(exc) if isinstance(exc, docker.errors.DockerException) else str(exc)
                raise RuntimeFailure(f"put the code into {spec.name}", detail) from exc
        return container_id

    def _run_created(self, spec: ContainerSpec, container_id: str) -> Container:
        try:
            self._api.start(container_id)
            return _container(self._api.inspect_container(container_id))
        except docker.errors.DockerException as exc:
            self._force_remove(container_id)
            raise RuntimeFailure(f"start {spec.name}", _explain(exc)) from exc

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
                    result.append(_container(self._api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:
                    continue  # removed between the listing and the inspection
            return result
        except docker.errors.DockerException as exc:
            raise RuntimeFailure("list containers", _explain(exc)) from exc

    async def published_ports(self) -> set[int]:
        """Host ports of this installation's containers (one listing, no inspections)."""
        return await asyncio.to_thread(self._published_ports)

    def _published_ports(self) -> set[int]:
        try:
            summaries = self._api.containers(
                all=True, filters={"label": [f"{LABEL_MANAGED}={self._installation}"]})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure("list containers", _explain(exc)) from exc
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
            return _container(await asyncio.to_thread(self._api.inspect_container, container_id))
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect {container_id[:12]}", _explain(exc)) from exc

    async def stop(self, container_id: str, timeout: float) -> None:
        await asyncio.to_thread(self._stop, container_id, timeout)

    def _stop(self, container_id: str, timeout: float) -> None:
        try:
            self._api.stop(container_id, timeout=max(0, int(timeout)))
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"stop {container_id[:12]}", _explain(exc)) from exc

    async def start_existing(self, container_id: str) -> None:
        try:
            await asyncio.to_thread(self._api.start, container_id)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"start {container_id[:12]}", _explain(exc)) from exc

    async def remove(self, container_id: str, timeout: float) -> None:
        """SIGTERM, up to `timeout` seconds of grace, SIGKILL, then remove."""
        await self.stop(container_id, timeout)
        await asyncio.to_thread(self._force_remove, container_id)

    def _force_remove(self, reference: str) -> None:
        """Remove a container by id or name, running or not; gone already is fine."""
        try:
            self._api.remove_container(reference, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"remove {reference[:12]}", _explain(exc)) from exc

    # one-off containers (release phase) ------------------------------------------------

    async def run_once(
        self, spec: ContainerSpec, timeout: float, emit: Callable[[str], None]
    ) -> int:
        """Run `spec` to completion, streaming its output; kill it past `timeout`."""
        await asyncio.to_thread(self._force_remove, spec.name)  # a dead agent's leftover
        container = await self.start(spec)
        loop = asyncio.get_running_loop()
        follower = threading.Thread(
            target=self._pump_logs,
            args=(container.id, lambda line: loop.call_soon_threadsafe(emit, line)),
            daemon=True,
        )
        follower.start()
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(self._api.wait, container.id), timeout
            )
            status = int(result.get("StatusCode", 1))
        except TimeoutError:
            emit(f"timed out after {timeout:g} s; stopping")
            status = -1
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"wait for {spec.name}", _explain(exc)) from exc
        finally:
            await asyncio.to_thread(self._force_remove, container.id)
            await asyncio.to_thread(follower.join, 5)
        return status

    async def run_attached(
        self, spec: ContainerSpec, size: tuple[int, int], timeout: float, terminal: Terminal
    ) -> int:
        await asyncio.to_thread(self._force_remove, spec.name)  # a dead agent's leftover
        container_id = await self.create(spec)
        try:
            sock = await asyncio.to_thread(self._attach, container_id)
            try:
                await self.start_created(spec, container_id)
                await asyncio.to_thread(self._resize, container_id, size)
                return await self._relay(container_id, sock, timeout, terminal)
            finally:
                sock.close()
        finally:
            await asyncio.shield(asyncio.to_thread(self._force_remove, container_id))

    def _attach(self, container_id: str) -> socket.socket:
        """The container's terminal as a plain socket (with a tty the engine sends raw
        bytes, no stream headers)."""
        try:
            attached = self._api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"attach to {container_id[:12]}", _explain(exc)) from exc
        raw = getattr(attached, "_sock", attached)
        assert isinstance(raw, socket.socket)
        return raw

    def _resize(self, container_id: str, size: tuple[int, int]) -> None:
        columns, rows = size
        try:
            self._api.resize(container_id, height=rows, width=columns)
        except docker.errors.DockerException as exc:
            log.info("terminal resize refused container=%s error=%s", container_id[:12], exc)

    async def _relay(
        self, container_id: str, sock: socket.socket, timeout: float, terminal: Terminal
    ) -> int:
        """Keystrokes in, output out, until the container exits (its status), the
        terminal goes away (killed: 129, as a hang-up), or `timeout` passes (-1)."""
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes | None] = asyncio.Queue()

        def read() -> None:
            try:
                while data := sock.recv(65536):
                    loop.call_soon_threadsafe(output.put_nowait, data)
            except OSError:
                pass
            loop.call_soon_threadsafe(output.put_nowait, None)

        async def send_output() -> None:
            while (data := await output.get()) is not None:
                await terminal.send(data)

        async def take_input() -> bool:
            """True when the user hung up; False when the container's input closed."""
            while (item := await terminal.receive()) is not None:
                try:
                    if isinstance(item, bytes):
                        await asyncio.to_thread(sock.sendall, item)
                    else:
                        await asyncio.to_thread(self._resize, container_id, item)
                except OSError:
                    return False  # exiting: its status tells the rest
            return True

        threading.Thread(target=read, daemon=True).start()
        exited = asyncio.ensure_future(asyncio.to_thread(self._api.wait, container_id))
        exited.add_done_callback(_consume)  # left behind on a hang-up: ends with the removal
        printed = asyncio.ensure_future(send_output())
        typed = asyncio.ensure_future(take_input())
        deadline = loop.time() + timeout
        try:
            done, _ = await asyncio.wait({exited, typed}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if exited not in done and typed in done:
                if typed.result():
                    return HUNG_UP
                done, _ = await asyncio.wait({exited}, timeout=max(0, deadline - loop.time()))
            if exited not in done:
                return -1
            await asyncio.wait({printed}, timeout=5)  # the last output, then the status
            return int(exited.result().get("StatusCode", 1))
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"wait for {container_id[:12]}", _explain(exc)) from exc
        finally:
            for task in (printed, typed):
                task.cancel()
            await asyncio.gather(printed, typed, return_exceptions=True)

    def _pump_logs(self, container_id: str, emit: Callable[[str], None]) -> None:
        try:
            for line in _lines(self._api.logs(container_id, stream=True, follow=True)):
                emit(line)
        except docker.errors.DockerException:
            return  # the container was removed under the stream: nothing more to say

    # logs ----------------------------------------------------------------------------

    async def logs_tail(self, container_id: str, lines: int) -> list[str]:
        try:
            raw = await asyncio.to_thread(self._api.logs, container_id, tail=lines)
        except docker.errors.DockerException:
            return []
        return str(raw.decode("utf-8", "replace")).splitlines()

    async def logs(
        self, containers: list[Container], *, follow: bool, tail: int
    ) -> AsyncIterator[LogLine]:
        """Lines of several containers, merged in arrival order (time order when not
        following), labelled with each container's dyno name."""
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        streams: list[Any] = []
        lock = threading.Lock()

        def pump(container: Container) -> None:
            source = container.instance.dyno if container.instance else container.name
            try:
                stream = self._api.logs(
                    container.id, stream=True, follow=follow, timestamps=True, tail=tail
                )
                with lock:
                    streams.append(stream)
                for line in _lines(stream):
                    stamp, _, text = line.partition(" ")
                    loop.call_soon_threadsafe(_offer, queue, LogLine(source, stamp, text))
            except (docker.errors.DockerException, RuntimeError, OSError):
                pass  # container gone or stream closed by the consumer
            finally:
                loop.call_soon_threadsafe(_offer, queue, None)

        threads = [threading.Thread(target=pump, args=(c,), daemon=True) for c in containers]
        for thread in threads:
            thread.start()
        try:
            pending = len(threads)
            collected: list[LogLine] = []
            while pending:
                item = await queue.get()
                if item is None:
                    pending -= 1
                elif follow:
                    yield item
                else:
                    collected.append(item)
            for item in sorted(collected, key=lambda line: line.time):
                yield item
        finally:
            with lock:
                for stream in streams:
                    stream.close()

    # images --------------------------------------------------------------------------

    async def remove_image(self, reference: str) -> None:
        try:
            await asyncio.to_thread(self._api.remove_image, reference)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # In use by a container (a straggler, or a user's own): keep it, say why.
            log.warning("image not removed ref=%s reason=%s", reference, _explain(exc))

    async def remove_app_images(self, app: str) -> None:
        """Every image labelled as the app's, failed builds' leftover layers included."""
        try:
            # Top-level images only (tagged, or dangling leftovers of failed builds):
            # removing one removes the untagged layers beneath it.
            images = await asyncio.to_thread(
                self._api.images, filters={"label": f"{LABEL_APP}={app}"})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"list images of {app}", _explain(exc)) from exc
        for image in images:
            for reference in image.get("RepoTags") or []:
                if reference != "<none>:<none>":
                    await self.remove_image(reference)
            await self.remove_image(image["Id"])

    async def image_parent(self, reference: str) -> str:
        try:
            image = await asyncio.to_thread(self._api.inspect_image, reference)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect image {reference}", _explain(exc)) from exc
        return str(image.get("Parent") or "")

    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]:
        return await asyncio.to_thread(self._read_files, image, paths)

    def _read_files(self, image: str, paths: Sequence[str]) -> dict[str, bytes]:
        """From a container created (never started) for the purpose, then removed."""
        try:
            container_id = str(self._api.create_container(
                image, command=["true"], labels={LABEL_MANAGED: self._installation})["Id"])
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", _explain(exc)) from exc
        try:
            found: dict[str, bytes] = {}
            for path in paths:
                try:
                    stream, _ = self._api.get_archive(container_id, path)
                except docker.errors.NotFound:
                    continue
                data = b"".join(stream)
                with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                    member = archive.next()
                    if member is not None and member.isfile():  # a symlink: not followed
                        handle = archive.extractfile(member)
                        if handle is not None:
                            found[path] = handle.read()
            return found
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", _explain(exc)) from exc
        except tarfile.TarError as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", str(exc)) from exc
        finally:
            self._force_remove(container_id)

    async def image_exists(self, reference: str) -> bool:
        try:
            await asyncio.to_thread(self._api.inspect_image, reference)
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect image {reference}", _explain(exc)) from exc
        return True


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
