"""`berth backup`: one archive of everything needed to rebuild this server.

A fresh dump of every add-on is taken first (so the state database records them), then
a consistent online copy of the state database, then the tar is written to
data_dir/server-backups/ (root's only) under a temporary name and renamed when complete.
The control API streams it to the client, and removes it once it was sent whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.addons.service import AddonService
from agent.backups.service import BackupService
from agent.deploy.output import DeployOutput
from agent.errors import BerthError, NotFound
from agent.serverbackup import archive
from agent.serverbackup.archive import Source
from agent.serverbackup.manifest import CONFIG, DATABASE, TREES, AddonEntry
from agent.store.apps import AppStore
from agent.store.db import Database

_NAME_PREFIX = "berth-server-"
REASON = "server"  # of the add-on backups a server backup takes


@dataclass(frozen=True)
class Written:
    name: str
    size: int
    sha256: str
    apps: int
    addons: int


class _HashingSink:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._handle.write(data)


class ServerBackups:
    """Writes server archives; one backup or restore at a time (`lock`)."""

    def __init__(self, *, data_dir: Path, config_file: Path | None, db: Database,
                 apps: AppStore, addons: AddonService | None, backups: BackupService | None,
                 version: str, restart_agent: Callable[[], None] | None = None) -> None:
        self.data_dir = data_dir
        self.config_file = config_file
        # Restarts the running agent in place (a restored berth.toml applies); None when
        # there is no agent to restart (tests in-process).
        self.restart_agent = restart_agent
        self.db = db
        self.apps = apps
        self.addons = addons
        self.backups = backups
        self.version = version
        self.lock = asyncio.Lock()

    @property
    def directory(self) -> Path:
        return self.data_dir / "server-backups"

    def archive_path(self, name: str) -> Path:
        if not name.startswith(_NAME_PREFIX) or "/" in name or not name.endswith(".tar"):
            raise NotFound("server archive", name)
        path = self.directory / name
        if not path.is_file():
            raise NotFound("server archive", name)
        return path

    async def backup(self, out: DeployOutput) -> Written:
        if self.lock.locked():
            raise BerthError("a server backup or restore is already running")
        async with self.lock:
            addons = await self._capture_addons(out)
            out.step("Copying the state database")
            self.directory.mkdir(mode=0o700, exist_ok=True)
            await asyncio.to_thread(self._clear_directory)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            work = self.directory / f".work-{stamp}"
            work.mkdir(mode=0o700)
            try:
                self.db.copy_to(work / "berth.db")
                out.step("Writing the archive")
                return await asyncio.to_thread(self._write, work, f"{_NAME_PREFIX}{stamp}.tar",
                                               addons)
            finally:
                await asyncio.to_thread(_remove_tree, work)

    async def _capture_addons(self, out: DeployOutput) -> list[tuple[AddonEntry, str]]:
        """A fresh dump of every add-on: (entry, its file under backups/)."""
        if self.addons is None or self.backups is None:
            return []
        taken: list[tuple[AddonEntry, str]] = []
        for addon in self.addons.store.all():
            earlier = [b for b in self.backups.store.of_app(addon.app, addon.name)
                       if b.reason == REASON]
            backup = await self.backups.capture(addon.app, addon.name, out, reason=REASON)
            for old in earlier:  # the archive that took it holds it; one is kept here
                await self.backups.delete(old)
            taken.append((AddonEntry(addon.app, addon.name, addon.kind, backup.id,
                                     backup.server_version),
                          f"{addon.app}/{backup.file_name}"))
        return taken

    def _sources(self, work: Path, dumps: list[str]) -> list[Source]:
        sources = [Source(DATABASE, work / "berth.db")]
        if self.config_file is not None:
            sources.append(Source(CONFIG, self.config_file))
        sources += [Source(name, self.data_dir / name) for name in TREES if name != "backups"]
        sources += [Source(f"backups/{dump}", self.data_dir / "backups" / dump) for dump in dumps]
        return sources

    def _write(self, work: Path, name: str, addons: list[tuple[AddonEntry, str]]) -> Written:
        final = self.directory / name
        partial = self.directory / f".{name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                sink = _HashingSink(handle)
                archive.write(sink, self._sources(work, [d for _, d in addons]),  # type: ignore[arg-type]
                              berth_version=self.version, apps=self.apps.names(),
                              addons=[a for a, _ in addons])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return Written(name, sink.size, sink.digest.hexdigest(), len(self.apps.names()),
                       len(addons))

    def _clear_directory(self) -> None:
        """Archives of earlier backups never fetched whole are not kept."""
        for leftover in self.directory.iterdir():
            _remove_tree(leftover)


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
