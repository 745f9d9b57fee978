"""What instances that are gone last said: runtime logs kept across redeploys.

Docker forgets a container's output when the container is removed, and every deploy,
restart, scale-down or crash-and-replace removes some; "logs lost on redeploy" is one of
the field's open pains. Before Berth removes a process container it saves the
container's last lines here, and `berth logs` merges them with the running instances'.

One file of JSON lines per app (`APP.jsonl`), rotated to `APP.jsonl.1` once it passes
`max_bytes`, so an app keeps between one and two files' worth of history. Instances
retired together are saved from several threads at once: one lock orders the writes,
rotations and reads.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.deploy.runtime import LogLine

DEFAULT_MAX_BYTES = 2 * 1024 * 1024


class LogHistory:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._directory = directory
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def _files(self, app: str) -> tuple[Path, Path]:
        """The app's older and current file, in that order."""
        current = self._directory / f"{app}.jsonl"
        return current.with_name(current.name + ".1"), current

    def save(self, app: str, lines: Sequence[LogLine]) -> None:
        """Append an instance's last lines (in their order) to the app's history."""
        if not lines:
            return
        data = "".join(
            json.dumps({"time": line.time, "source": line.source, "text": line.text,
                        "release": line.release}, ensure_ascii=False) + "\n"
            for line in lines
        ).encode("utf-8")
        older, path = self._files(app)
        with self._lock:
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self._max_bytes:
                os.replace(path, older)
                size = 0
            with path.open("ab+") as sink:
                if size:
                    sink.seek(-1, os.SEEK_END)
                    if sink.read(1) != b"\n":
                        data = b"\n" + data  # a write torn by a crash stays its own bad line
                sink.write(data)

    def tail(self, app: str, count: int, process: str | None = None) -> list[LogLine]:
        """The last `count` saved lines of the app (of one process type), oldest first."""
        if count <= 0:
            return []
        with self._lock:
            lines = [
                line
                for source in self._files(app)
                for line in _read(source)
                if process is None or line.source.partition(".")[0] == process
            ]
        return lines[-count:]

    def forget(self, app: str) -> None:
        with self._lock:
            for source in self._files(app):
                source.unlink(missing_ok=True)


def _read(path: Path) -> Iterable[LogLine]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    for text in raw.decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(text)
            yield LogLine(str(item["source"]), str(item["time"]), str(item["text"]),
                          _release(item.get("release")))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash mid-write: skip it


def _release(value: object) -> int:
    """A saved line's release number; 0 for lines saved before releases were kept."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
