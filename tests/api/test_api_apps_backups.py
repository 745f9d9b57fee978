"""`berth apps` says when an app's backups need attention: an add-on whose last scheduled
backup failed, or one without a backup for more than a day; `ok` otherwise, `-` for an
app without add-ons. Real stores and the real API on its socket; no container is made
(the scheduler only reads the stores here)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from agent.addons.model import Addon
from agent.addons.store import SCHEMA as ADDONS_SCHEMA
from agent.addons.store import AddonStore
from agent.backups.schedule import DAY
from agent.backups.scheduler import BackupScheduler
from agent.backups.service import BackupService
from agent.backups.store import SCHEMA as BACKUPS_SCHEMA
from agent.backups.store import BackupStore
from agent.cli.main import main
from agent.store.schema import SCHEMA
from tests.api.conftest import make_services, serving

NOW = 1_800_000_000.0


class StoredAddons:
    """The add-on service as the scheduler reads it: its store."""

    def __init__(self, store: AddonStore) -> None:
        self.store = store


def addon(app: str, name: str, kind: str, created_at: float) -> Addon:
    return Addon(app=app, name=name, kind=kind, version="15", image=f"{kind}:15",
                 variable=f"{name.upper()}_URL", password="s3cret-password", created_at=created_at)


def berth(environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv), environ)
    return status, out.getvalue(), err.getvalue()


def test_apps_shows_a_failed_and_an_overdue_backup(tmp_path: Path) -> None:
    services, db = make_services(tmp_path, schemas=(SCHEMA, ADDONS_SCHEMA, BACKUPS_SCHEMA))
    addons, runs = AddonStore(db), BackupStore(db)
    backups = BackupService(StoredAddons(addons), runs, services.events)  # type: ignore[arg-type]
    services.addons = StoredAddons(addons)  # type: ignore[assignment]
    services.backup_scheduler = BackupScheduler(backups, clock=lambda: NOW)
    for app in ("shop", "blog", "plain", "fresh"):
        services.app_service().create(app)
    addons.add(addon("shop", "postgres", "postgres", NOW - 3 * DAY))
    addons.add(addon("shop", "redis", "redis", NOW - 60))
    runs.record_run("shop", "postgres", NOW - 3600, "pg_dump of postgres failed: disk full")
    addons.add(addon("blog", "postgres", "postgres", NOW - 3 * DAY))  # never backed up
    addons.add(addon("fresh", "redis", "redis", NOW - 60))
    with serving(services, db, tmp_path) as environ:
        status, out, err = berth(environ, "apps")
        listed = json.loads(berth(environ, "apps", "--json")[1])
    assert status == 0 and err == "", err
    header, *lines = out.splitlines()
    column = slice(header.index("BACKUPS"), header.index("DOMAINS"))
    shown = {line.split()[0]: line[column].strip() for line in lines if "  " in line}
    assert shown == {"shop": "postgres FAILED", "blog": "postgres OVERDUE", "fresh": "ok",
                     "plain": "-"}
    assert ("shop: postgres: last scheduled backup failed: pg_dump of postgres failed: "
            "disk full (berth addons shop)") in out
    assert "blog: postgres: backup overdue" in out
    by_name = {row["name"]: row for row in listed}
    assert by_name["shop"]["backup_problems"] == [
        {"addon": "postgres", "problem": "failed",
         "detail": "pg_dump of postgres failed: disk full"}]
    assert by_name["fresh"] == {**by_name["fresh"], "addons": 1, "backup_problems": []}
    assert "s3cret-password" not in out + json.dumps(listed)
