"""`berth restore FILE`: a server archive put back on this server, as a chain of steps.

Refuse a server that has apps (unless forced); unpack and check the archive into a
staging directory inside data_dir, and check its state database, before anything live is
touched; with --force, destroy the apps the archive does not hold; swap the staged data
in (agent.serverbackup.swap: all or nothing); bring the running agent up to date (keys,
repositories' hooks, certificates); re-create each add-on from its dump; rebuild and
start each app's live release. From the swap on the data is restored: an app whose
rebuild fails is reported, and the others still start.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import sqlite3
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.backups import restore as addon_restore
from agent.certs.state import CertState
from agent.certs.storage import CertStore
from agent.deploy.output import DeployOutput
from agent.errors import BerthError, Conflict
from agent.serverbackup import archive, configfile
from agent.serverbackup.manifest import CONFIG, DATABASE, BadServerArchive, Manifest
from agent.serverbackup.service import ServerBackups
from agent.serverbackup.swap import Swap
from agent.services import boot, trees

if TYPE_CHECKING:
    from agent.api.services import Services

log = logging.getLogger(__name__)

ROOM_KEPT = 256 * 1024 * 1024  # what the staging may not take of the disk's free space


class _NotRunning:
    """A restored app has no instances yet while its add-on gets its data."""

    def hold(self, app: str, out: DeployOutput) -> AbstractAsyncContextManager[None]:
        return nullcontext()

    def running(self, app: str) -> bool:
        return False

    async def stop(self, app: str, out: DeployOutput) -> None:
        return None

    async def start(self, app: str, out: DeployOutput) -> None:
        return None


def staging_dir(server: ServerBackups) -> Path:
    """A new directory inside data_dir for one restore's upload and unpacked archive."""
    path = server.data_dir / f".restore-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700, parents=True)
    return path


def refuse_unless_empty(services: Services, force: bool) -> None:
    apps = services.apps.names()
    if apps and not force:
        raise Conflict(f"this server has apps ({', '.join(apps[:5])}"
                       f"{', ...' if len(apps) > 5 else ''}): restore onto a freshly installed "
                       "Berth, or pass --force to replace them")


def room(path: Path) -> int:
    free = shutil.disk_usage(path).free
    return max(0, free - ROOM_KEPT)


class ServerRestore:
    def __init__(self, server: ServerBackups, services: Services) -> None:
        self.server = server
        self.s = services

    async def run(self, staging: Path, *, force: bool, out: DeployOutput) -> dict[str, Any]:
        """Restore the archive uploaded as staging/archive.tar; staging is removed."""
        if self.server.lock.locked():
            raise BerthError("a server backup or restore is already running")
        config_changed = False
        try:
            async with self.server.lock:
                refuse_unless_empty(self.s, force)
                manifest = await self._unpack(staging, out)
                if force:
                    await self._destroy_others(manifest, out)
                previous = await self._swap(staging / "tree", out)
                config_changed = self._restore_config(staging / "tree", out)
                self._refresh()
                await self._serve_custom_certificates(out)
                failed = await self._recreate_addons(manifest, out)
                failed += await self._rebuild_apps(manifest, out)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
            if config_changed:
                self._apply_config(out)
        if force:
            out.heading(f"The server's previous data is kept in {previous}: delete it once "
                        "you no longer need it")
        else:
            await asyncio.to_thread(shutil.rmtree, previous, True)
        if failed:
            raise BerthError(f"restored, but not everything started: {'; '.join(failed)}")
        out.heading(f"Restored {len(manifest.apps)} app(s) and {len(manifest.addons)} "
                    "add-on(s)")
        return {"apps": list(manifest.apps), "addons": len(manifest.addons)}

    async def _unpack(self, staging: Path, out: DeployOutput) -> Manifest:
        out.step("Checking the archive")
        upload = staging / "archive.tar"
        manifest = await asyncio.to_thread(archive.unpack, upload, staging / "tree",
                                           budget=room(staging))
        upload.unlink()
        await asyncio.to_thread(_check_database, staging / "tree" / DATABASE, manifest)
        written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(manifest.created_at))
        out.detail(f"written {written} by Berth {manifest.berth_version}: "
                   f"{len(manifest.files)} files, apps: {', '.join(manifest.apps) or 'none'}")
        return manifest

    async def _destroy_others(self, manifest: Manifest, out: DeployOutput) -> None:
        """--force: this server's apps that the archive does not hold are removed
        (their data stays in the previous data's directory)."""
        for app in self.s.apps.names():
            if app not in manifest.apps:
                out.step(f"Removing {app}, which the archive does not hold")
                await self.s.deployer.destroy(app, out)

    async def _swap(self, tree: Path, out: DeployOutput) -> Path:
        out.step("Putting the server's data in place")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        previous = self.server.data_dir / f"restore-previous-{stamp}"
        Swap(self.server.data_dir, tree, previous, self.server.db).run(self.s.config.ssh.user)
        return previous

    def _restore_config(self, tree: Path, out: DeployOutput) -> bool:
        """berth.toml back where this agent read its own, if it may be
        (agent.serverbackup.configfile); whether the agent must restart to apply it."""
        archived, current = tree / CONFIG, self.server.config_file
        if not archived.is_file() or current is None:
            return False
        restored = configfile.put_back(archived, current, self.server.data_dir)
        if restored.said is not None:
            how = ("the agent restarts in place to apply it once the restore ends"
                   if self.server.restart_agent is not None else "restart the agent to apply it")
            out.heading(f"{restored.said}: {how}" if restored.replaced else restored.said)
        return restored.replaced

    def _apply_config(self, out: DeployOutput) -> None:
        """The restored berth.toml applied: the agent restarts in place (it finishes this
        answer first, and refuses no request meanwhile)."""
        if self.server.restart_agent is not None:
            out.step("Restarting the agent in place to apply the restored berth.toml")
            asyncio.get_running_loop().call_soon(self.server.restart_agent)

    def _refresh(self) -> None:
        """The running agent follows the restored state: keys, hooks, certificates."""
        s = self.s
        s.key_service().sync()
        boot.restore_repos(s.apps, s.events, s.app_service())
        if s.certificates is not None:
            boot.restore_certificates(s.certificates, s.apps, s.events, s.deployer,
                                      s.config.deploy.domain)

    async def _serve_custom_certificates(self, out: DeployOutput) -> None:
        """Apps' own certificates (certs:add) served again, as a start would."""
        manager = self.s.certificates
        if manager is None:
            return
        store = CertStore(self.s.config.paths.certs)
        for app in sorted(CertState(self.server.db).custom()):
            pair = await asyncio.to_thread(store.load_custom, app)
            if pair is None:
                continue
            try:
                await manager.add_custom(app, pair.chain_pem, pair.key_pem)
            except BerthError as exc:
                out.heading(f"the certificate of {app} is not served: {exc}")

    async def _recreate_addons(self, manifest: Manifest, out: DeployOutput) -> list[str]:
        """Each add-on on an empty data directory, given its dump; what failed."""
        addons, backups = self.s.addons, self.s.backups
        if addons is None or backups is None:
            return ["add-ons (this agent runs without them)"] if manifest.addons else []
        failed: list[str] = []
        for entry in manifest.addons:
            addon = addons.store.get(entry.app, entry.name)
            out.step(f"Re-creating {entry.name} of {entry.app} from {entry.backup}")
            try:
                with addons.paused(addon):
                    await addons.recreate_empty(addon)
                    await addon_restore.restore(backups, _NotRunning(), entry.app,
                                                entry.backup, out)
            except BerthError as exc:
                log.error("restore: add-on not re-created app=%s addon=%s error=%s",
                          entry.app, entry.name, exc)
                out.heading(f"{entry.name} of {entry.app} was not re-created: {exc}")
                failed.append(f"{entry.name} of {entry.app} ({exc}; backups:restore "
                              f"{entry.app} {entry.backup} tries again)")
        await addons.reconcile()  # add-ons the archive does not hold are removed
        return failed

    async def _rebuild_apps(self, manifest: Manifest, out: DeployOutput) -> list[str]:
        failed: list[str] = []
        for app in manifest.apps:
            try:
                await self._rebuild(app, out)
            except BerthError as exc:
                log.error("restore: app not started app=%s error=%s", app, exc)
                self.s.events.record(app, "RestoreFailed", f"not started: {exc}")
                out.heading(f"{app} did not start: {exc}")
                failed.append(f"{app} ({exc}; a push or ps:rebuild tries again)")
            else:
                self.s.events.record(app, "ServerRestored", "restored from a server archive")
        return failed

    async def _rebuild(self, app: str, out: DeployOutput) -> None:
        """Build the live release's commit from the restored repository, and release
        it: the app's images did not travel in the archive."""
        live = self.s.releases.live(app)
        if live is None or not live.git_sha:
            out.detail(f"{app} was not deployed: nothing to start")
            return
        paths = self.s.config.paths
        workdir = trees.new_workdir(paths.builds, app, live.git_sha)
        try:
            await trees.export(paths.repo(app), live.git_sha, workdir,
                               self.s.config.deploy.max_push_bytes)
            # Its own output: a deploy settles its stream at the swap, and this
            # restore's stream goes on to the next app.
            await self.s.deployer.deploy_push(app, live.git_sha, workdir / "src",
                                              DeployOutput(out.raw), description="Restore")
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)


def _check_database(path: Path, manifest: Manifest) -> None:
    """The staged state database is whole and holds the apps and add-ons the manifest
    names."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
            apps = {row[0] for row in db.execute("SELECT name FROM apps")}
            addons = {(r[0], r[1]) for r in db.execute("SELECT app, name FROM addons")} \
                if manifest.addons else set()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BadServerArchive(f"{DATABASE} is not a readable state database ({exc})") from None
    if verdict != "ok":
        raise BadServerArchive(f"{DATABASE} is damaged ({verdict})")
    if apps != set(manifest.apps):
        raise BadServerArchive(f"{DATABASE} does not hold the manifest's apps")
    missing = [f"{a.app}/{a.name}" for a in manifest.addons if (a.app, a.name) not in addons]
    if missing:
        raise BadServerArchive(f"{DATABASE} does not hold the add-ons {', '.join(missing)}")
