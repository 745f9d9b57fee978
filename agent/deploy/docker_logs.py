"""Reading containers' logs from the Docker engine: a tail, or several merged streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import docker
import docker.errors

from agent.deploy.docker_engine import EngineClient, text_lines
from agent.deploy.runtime import Container, LogLine


def _offer(queue: asyncio.Queue[LogLine | None], item: LogLine | None) -> None:
    """Queue a log line, dropping lines (never end markers) past a bound: a reader
    that does not keep up loses lines instead of growing the agent's memory."""
    if item is None or queue.qsize() < 10_000:
        queue.put_nowait(item)


class ContainerLogs(EngineClient):
    """The engine's json-file logs of Berth's containers."""

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
        following), labelled with each container's dyno name and release."""
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
                for line in text_lines(stream):
                    stamp, _, text = line.partition(" ")
                    loop.call_soon_threadsafe(
                        _offer, queue, LogLine(source, stamp, text, container.release))
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
