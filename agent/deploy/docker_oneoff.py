"""One-off containers in the Docker engine: the release phase and `berth run`.

A one-off runs to completion and is removed; its output goes to the caller as it comes.
With a terminal (`run_attached`) the user's keystrokes go in and the container's
terminal comes out until it exits, the user hangs up, or the deadline passes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable

import docker
import docker.errors
import requests.exceptions

from agent.deploy.deathcause import SIGKILLED, megabytes
from agent.deploy.docker_containers import ContainerLifecycle
from agent.deploy.docker_engine import RuntimeFailure, consume, explain
from agent.deploy.plan import ContainerSpec
from agent.deploy.runtime import OutputSink, Terminal
from agent.deploy.streams import FrameDecoder, LineSplitter
from agent.deploy.terminal_output import TerminalOutput
from agent.errors import BerthError

log = logging.getLogger(__name__)

HUNG_UP = 129  # 128 + SIGHUP: a one-off whose terminal went away


class OutputLost(BerthError):
    """The sink of a streamed one-off failed: its output stopped reaching the caller,
    so its exit status would claim a run whose output is missing."""

    status = 500

    def __init__(self, container_id: str, cause: BaseException) -> None:
        super().__init__(f"output of one-off {container_id[:12]} was lost: "
                         f"{type(cause).__name__}: {cause}")
        self.container_id = container_id


class OneOffs(ContainerLifecycle):
    """Runs one-off containers to completion, with or without a terminal."""

    async def run_once(
        self, spec: ContainerSpec, timeout: float, emit: Callable[[str], None]
    ) -> int:
        """Run `spec` to completion, its output as lines to `emit`; killed past
        `timeout` (-1)."""
        lines = LineSplitter(emit)

        async def sink(stream: int, data: bytes) -> None:
            lines.feed(data)

        status = await self.run_streamed(spec, timeout, sink)
        lines.close()
        if status == -1:
            emit(f"timed out after {timeout:g} s; stopping")
        return status

    async def _oom_killed(self, container_id: str, grace: float = 0.5) -> bool:
        """Whether the kernel killed a process of the container for memory (its log
        line is read within moments of the kill: up to `grace` seconds are given)."""
        if self._oom is None:
            return False
        deadline = asyncio.get_running_loop().time() + grace
        while not self._oom.kills(container_id):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def run_streamed(self, spec: ContainerSpec, timeout: float, sink: OutputSink) -> int:
        """Run `spec` to completion; every byte of its stdout and stderr goes to `sink`
        as it comes, which sets the pace (the container blocks on its writes while the
        sink is busy); its exit status (-1 past `timeout`: it is killed). A sink that
        raises stops the run: the container is removed and OutputLost raised (a sink
        that is cancelled, as when the client went away, just stops it)."""
        async with self._started(spec, stdin=False) as (container_id, sock):
            status = await self._pump(container_id, sock, timeout, sink)
            if status == SIGKILLED and await self._oom_killed(container_id):
                await self._say_out_of_memory(spec, container_id, sink)
            return status

    async def _say_out_of_memory(
        self, spec: ContainerSpec, container_id: str, sink: OutputSink
    ) -> None:
        """After the output of a one-off killed at its memory limit, one line saying so."""
        memory = self._limits_of(spec).memory
        said = f" (limit {megabytes(memory)})" if memory else ""
        try:
            await sink(2, f"ran out of memory{said}: killed by the kernel\n".encode())
        except Exception as exc:  # a failing sink, as for the output before it
            raise OutputLost(container_id, exc) from exc

    @contextlib.asynccontextmanager
    async def _started(
        self, spec: ContainerSpec, *, stdin: bool
    ) -> AsyncIterator[tuple[str, socket.socket]]:
        """The one-off created, attached before it starts (no output is missed), started;
        afterwards the socket is closed and the container removed, whatever happened."""
        await asyncio.to_thread(self._force_remove, spec.name)  # a dead agent's leftover
        container_id = await self.create(spec)
        try:
            sock = await asyncio.to_thread(self._attach, container_id, stdin=stdin)
            try:
                await self.start_created(spec, container_id)
                yield container_id, sock
            finally:
                sock.close()
        finally:
            await asyncio.shield(asyncio.to_thread(self._force_remove, container_id))

    async def _pump(
        self, container_id: str, sock: socket.socket, timeout: float, sink: OutputSink
    ) -> int:
        """Output to `sink` until the stream ends (the container exited), then its status."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()
        thread = threading.Thread(target=_read_frames, name=f"run-{container_id[:12]}",
                                  args=(sock, sink, loop, ended, stop, container_id),
                                  daemon=True)
        thread.start()
        try:
            try:
                await asyncio.wait_for(asyncio.shield(ended), timeout)
            except OutputLost as exc:
                log.warning("one-off output lost container=%s error=%s",
                            container_id[:12], exc.__cause__)
                raise
            result = await asyncio.to_thread(self._api.wait, container_id, timeout=30)
            return int(result.get("StatusCode", 1))
        except TimeoutError:
            return -1
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"wait for {container_id[:12]}", explain(exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise RuntimeFailure(f"wait for {container_id[:12]}", str(exc)) from exc
        finally:
            stop.set()

    async def run_attached(
        self, spec: ContainerSpec, size: tuple[int, int], timeout: float, terminal: Terminal
    ) -> int:
        async with self._started(spec, stdin=True) as (container_id, sock):
            await asyncio.to_thread(self._resize, container_id, size)
            return await self._relay(container_id, sock, timeout, terminal)

    def _attach(self, container_id: str, *, stdin: bool) -> socket.socket:
        """The container's output (and input) as a plain socket: raw bytes with a tty,
        the engine's frames (agent.deploy.streams) without."""
        try:
            attached = self._api.attach_socket(container_id, params={
                "stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"attach to {container_id[:12]}", explain(exc)) from exc
        raw: object = getattr(attached, "_sock", attached)
        assert isinstance(raw, socket.socket)
        if attached is not raw:
            attached.close()  # docker-py's file view of it: without it, raw.close() closes
        raw.settimeout(None)  # a command may be quiet for longer than the client's timeout
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
        output = TerminalOutput(sock, f"oneoff-{container_id[:12]}")

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

        output.start()
        exited = asyncio.ensure_future(asyncio.to_thread(self._api.wait, container_id))
        exited.add_done_callback(consume)  # left behind on a hang-up: ends with the removal
        printed = asyncio.ensure_future(output.copy_to(terminal))
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
            raise RuntimeFailure(f"wait for {container_id[:12]}", explain(exc)) from exc
        finally:
            output.stop()
            for task in (printed, typed):
                task.cancel()
            await asyncio.gather(printed, typed, return_exceptions=True)


def _read_frames(
    sock: socket.socket, sink: OutputSink, loop: asyncio.AbstractEventLoop,
    ended: asyncio.Future[None], stop: threading.Event, container_id: str,
) -> None:
    """The reading thread: each piece is handed to `sink` on the loop and the next read
    waits until the sink took it (backpressure); `ended` is set at the stream's end, or
    fails with OutputLost when the sink raised."""
    decoder = FrameDecoder()
    try:
        while not stop.is_set() and (data := sock.recv(65536)):
            for stream, piece in decoder.feed(data):
                delivered: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(sink(stream, piece), loop)
                while not _settled(delivered, stop):
                    pass
                if stop.is_set() or delivered.cancelled():
                    return
                if (failure := delivered.exception()) is not None:
                    loop.call_soon_threadsafe(_fail, ended, container_id, failure)
                    return
    except (OSError, RuntimeError):
        pass  # the socket closed under us, or the loop is gone
    finally:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_finish, ended)


def _settled(delivered: concurrent.futures.Future[None], stop: threading.Event) -> bool:
    """Whether the sink took the piece (or failed); gives up once `stop` is set."""
    done, _ = concurrent.futures.wait([delivered], timeout=0.5)
    if not done and stop.is_set():
        delivered.cancel()
        return True
    return bool(done)


def _fail(ended: asyncio.Future[None], container_id: str, failure: BaseException) -> None:
    if not ended.done():
        lost = OutputLost(container_id, failure)
        lost.__cause__ = failure
        ended.set_exception(lost)


def _finish(ended: asyncio.Future[None]) -> None:
    if not ended.done():
        ended.set_result(None)
