import pytest

from agent.errors import AppNotFound, Conflict
from agent.releases import Release, ReleaseState
from agent.store.apps import AppStore
from agent.store.db import Database
from agent.store.events import EventStore
from agent.store.releases import ReleaseStore
from agent.store.schema import SCHEMA


@pytest.fixture
def db(tmp_path):
    database = Database.open(tmp_path / "berth.db", [SCHEMA])
    yield database
    database.close()


def template(app="web", **fields):
    return Release(app=app, number=0, state=ReleaseState.PENDING, description="d",
                   created_at=1.0, **fields)


def test_database_is_wal_and_private(db, tmp_path):
    mode = db.query("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    assert (tmp_path / "berth.db").stat().st_mode & 0o077 == 0


def test_apps_config_and_domains(db):
    apps = AppStore(db)
    apps.create("web")
    with pytest.raises(Conflict):
        apps.create("web")
    value = "a b 'quoted' \"double\"\nnew line ünïcödé"
    apps.replace_config("web", {"KEY": value, "OTHER": ""})
    assert apps.config("web") == {"KEY": value, "OTHER": ""}
    apps.add_domain("web", "www.example.com")
    apps.create("api")
    with pytest.raises(Conflict, match="belongs to app web"):
        apps.add_domain("api", "www.example.com")
    assert apps.domain_owner("www.example.com") == "web"
    apps.delete("web")
    assert apps.domain_owner("www.example.com") is None  # cascaded
    with pytest.raises(AppNotFound):
        apps.config("web")


def test_release_numbers_states_and_live(db):
    AppStore(db).create("web")
    store = ReleaseStore(db)
    first = store.create(template(git_sha="a" * 40))
    second = store.create(template())
    assert (first.number, second.number) == (1, 2)
    first = store.move(first, ReleaseState.BUILDING)
    first = store.move(first, ReleaseState.RELEASING)
    first = store.move(first, ReleaseState.STARTING)
    store.go_live(first)
    assert store.live("web").number == 1
    second = store.move(second, ReleaseState.RELEASING)
    second = store.move(second, ReleaseState.STARTING)
    store.go_live(second)
    assert store.live("web").number == 2
    assert store.get("web", 1).state is ReleaseState.SUPERSEDED
    assert [r.number for r in store.recent("web")] == [2, 1]


def test_unfinished_releases_are_found(db):
    AppStore(db).create("web")
    store = ReleaseStore(db)
    release = store.move(store.create(template()), ReleaseState.BUILDING)
    assert [r.number for r in store.unfinished()] == [release.number]


def test_build_log_is_appended_and_bounded(db, monkeypatch):
    AppStore(db).create("web")
    store = ReleaseStore(db)
    release = store.create(template())
    store.append_log("web", release.number, "line 1\n")
    store.append_log("web", release.number, "line 2\n")
    assert store.log("web", release.number) == "line 1\nline 2\n"
    monkeypatch.setattr("agent.store.releases.MAX_LOG_CHARS", 10)
    store.append_log("web", release.number, "dropped\n")
    assert "dropped" not in store.log("web", release.number)


def test_images_kept_for_rollback(db):
    AppStore(db).create("web")
    store = ReleaseStore(db)
    for n in range(1, 8):
        r = store.create(template(image_tag=f"berth/web:v{n}"))
        r = store.move(r, ReleaseState.RELEASING)
        r = store.move(r, ReleaseState.STARTING)
        store.go_live(r)
    keep = store.images_in_use("web", 5)
    assert keep == {f"berth/web:v{n}" for n in range(3, 8)}
    assert store.image_tags("web") - keep == {"berth/web:v1", "berth/web:v2"}
    assert store.prunable_tags("web", 5) == {"berth/web:v1", "berth/web:v2"}


def test_a_release_in_progress_keeps_its_image(db):
    """Pruning runs alongside deploys: a rollback to an old image, or a build that has
    just tagged its image, must not lose it."""
    AppStore(db).create("web")
    store = ReleaseStore(db)
    for n in range(1, 4):
        r = store.create(template(image_tag=f"berth/web:v{n}"))
        store.go_live(store.move(store.move(r, ReleaseState.RELEASING), ReleaseState.STARTING))
    assert store.prunable_tags("web", 2) == {"berth/web:v1"}
    rollback = store.create(template(image_tag="berth/web:v1"))
    building = store.create(template(image_tag="berth/web:v5"))
    assert store.prunable_tags("web", 2) == set()
    store.move(rollback, ReleaseState.FAILED, error="health check")
    store.move(building, ReleaseState.FAILED, error="build")
    assert store.prunable_tags("web", 2) == {"berth/web:v1", "berth/web:v5"}


def test_events_are_bounded_per_app(db, monkeypatch):
    monkeypatch.setattr("agent.store.events.MAX_EVENTS_PER_APP", 3)
    events = EventStore(db)
    for n in range(6):
        events.record("web", "Thing", str(n))
    assert [e.message for e in events.list("web")] == ["5", "4", "3"]


def test_storage_mounts(db):
    from agent.errors import Conflict, NotFound

    apps = AppStore(db)
    apps.create("web")
    apps.add_mount("web", "/app/uploads")
    apps.add_mount("web", "/app/data")
    assert apps.mounts("web") == ["/app/data", "/app/uploads"]
    with pytest.raises(Conflict):
        apps.add_mount("web", "/app/data")
    apps.remove_mount("web", "/app/uploads")
    with pytest.raises(NotFound):
        apps.remove_mount("web", "/app/uploads")
    apps.delete("web")
    apps.create("web")
    assert apps.mounts("web") == []  # a new app of the same name starts with none


def test_a_config_change_applies_to_the_stored_config_in_one_transaction(db):
    from agent.errors import BerthError
    from agent.services.configvars import ConfigChange

    apps = AppStore(db)
    apps.create("web")
    apps.change_config("web", ConfigChange({"A": "1", "B": "2"}))
    stale = apps.config("web")  # what a change read earlier would have written back
    apps.change_config("web", ConfigChange({"C": "3"}, ("A",)))
    assert apps.config("web") == {"B": "2", "C": "3"} != stale
    with pytest.raises(BerthError, match="web has no config var 'A'"):
        apps.change_config("web", ConfigChange({"D": "4"}, ("A",)))
    assert apps.config("web") == {"B": "2", "C": "3"}  # refused whole
    # A change already released is stored as far as it goes.
    assert apps.change_config("web", ConfigChange({"D": "4"}, ("A",)), strict=False) == {
        "B": "2", "C": "3", "D": "4"}


def test_rows_that_cannot_be_read_are_one_error_of_their_app(db):
    from agent.store.db import UnreadableRow

    apps, releases = AppStore(db), ReleaseStore(db)
    for name in ("web", "api"):
        apps.create(name)
    with db.transaction() as tx:
        tx.execute("UPDATE apps SET settings = '[1' WHERE name = 'web'")
        tx.execute("INSERT INTO releases (app, number, state, description, created_at, "
                   "processes) VALUES ('web', 1, 'live', 'v1', 0, '{')")
    with pytest.raises(UnreadableRow, match="settings of web cannot be read"):
        apps.get("web")
    with pytest.raises(UnreadableRow, match="release v1 of web cannot be read"):
        releases.live("web")
    assert apps.config("web") == {} and apps.domains("web") == []  # still reachable
    assert apps.get("api").name == "api" and releases.live("api") is None


def test_a_new_release_supersedes_a_live_one_that_cannot_be_read(db):
    AppStore(db).create("web")
    releases = ReleaseStore(db)
    with db.transaction() as tx:
        tx.execute("INSERT INTO releases (app, number, state, description, created_at, "
                   "processes) VALUES ('web', 1, 'live', 'v1', 0, '{')")
    second = releases.create(template())
    second = releases.move(second, ReleaseState.RELEASING)
    second = releases.move(second, ReleaseState.STARTING)
    releases.go_live(second)  # a push repairs the app (it used to fail after its swap)
    assert releases.live("web").number == 2
    assert [tuple(r) for r in db.query("SELECT number, state FROM releases ORDER BY number")
            ] == [(1, "superseded"), (2, "live")]


@pytest.mark.parametrize("stored, named", [
    ('{"hsts": "yes"}', "hsts"), ('{"max_body": "big"}', "max_body"),
    ('{"max_body": true}', "max_body"), ('{"deploy_branch": 7}', "deploy_branch"),
    ('{"health_timeout": [1]}', "health_timeout"), ('"just a string"', "settings"),
])
def test_settings_of_a_wrong_type_are_one_error_of_their_app(db, stored, named):
    from agent.store.db import UnreadableRow

    apps = AppStore(db)
    for name in ("web", "api"):
        apps.create(name)
    with db.transaction() as tx:
        tx.execute("UPDATE apps SET settings = ? WHERE name = 'web'", (stored,))
    with pytest.raises(UnreadableRow, match=f"settings of web cannot be read: .*{named}"):
        apps.get("web")
    assert apps.get("api").settings.hsts is False  # the other app is untouched
