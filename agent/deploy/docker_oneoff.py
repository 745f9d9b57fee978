"""One-off containers in the Docker engine: the release phase and `berth run`.

A one-off runs to completion and is removed; its output goes to the caller as it comes.
With a terminal (`run_attached`) the user's keystrokes go in and the container's
terminal comes out until it exits, the user hangs up, or the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable

import docker
import docker.errors

from agent.deploy.docker_containers import ContainerLifecycle
from agent.deploy.docker_engine import RuntimeFailure, consume, explain, text_lines
from agent.deploy.plan import ContainerSpec
from agent.deploy.runtime import Terminal

log = logging.getLogger(__name__)

HUNG_UP = 129  # 128 + SIGHUP: a one-off whose terminal went away


class OneOffs(ContainerLifecycle):
    """Runs one-off containers to completion, with or without a terminal."""

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
            raise RuntimeFailure(f"wait for {spec.name}", explain(exc)) from exc
        finally:
            await asyncio.to_thread(self._force_remove, container.id)
            await asyncio.to_thread(follower.join, 5)
        return status

    def _pump_logs(self, container_id: str, emit: Callable[[str], None]) -> None:
        try:
            for line in text_lines(self._api.logs(container_id, stream=True, follow=True)):
                emit(line)
        except docker.errors.DockerException:
            return  # the container was removed under the stream: nothing more to say

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
            raise RuntimeFailure(f"attach to {container_id[:12]}", explain(exc)) from exc
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
        exited.add_done_callback(consume)  # left behind on a hang-up: ends with the removal
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
            raise RuntimeFailure(f"wait for {container_id[:12]}", explain(exc)) from exc
        finally:
            for task in (printed, typed):
                task.cancel()
            await asyncio.gather(printed, typed, return_exceptions=True)
