"""The deploy worker against small hand-written fakes of the engine, builder and proxy.

The fake engine's web "containers" are real HTTP servers on loopback, so health checks
probe for real; the stores are real SQLite in a temp dir (tests/deploy/fakes.py). (The
same flows run against the real Docker engine and proxy in tests/e2e.)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.deploy.errors import DeployFailed
from agent.errors import BerthError
from agent.releases import ReleaseState
from agent.services.configvars import ConfigChange
from agent.store.events import EventStore
from tests.deploy.fakes import lines, world_in


async def test_a_push_goes_live_and_routes_the_web_instance(world):
    world.apps.create("shop")
    out, seen = lines()
    try:
        release = await world.deployer.deploy_push("shop", "a" * 40, world.source, out)
        assert release.state is ReleaseState.LIVE
        hosts, upstreams = world.router.routes["shop"]
        assert hosts == ["shop.example.test"] and len(upstreams) == 1
        assert world.apps.get("shop").formation == {"web": 1, "worker": 0}
        assert any("is live: http://shop.example.test" in line for line in seen)
        assert "building" in world.releases.log("shop", release.number)
    finally:
        await world.runtime.close()


async def test_a_failing_health_check_keeps_the_old_release(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        old_route = world.router.routes["shop"]
        world.runtime.status = 500
        world.runtime.body = b"db down"
        out, seen = lines()
        with pytest.raises(DeployFailed, match="status 500"):
            await world.deployer.deploy_push("shop", "b" * 40, world.source, out)
        assert world.router.routes["shop"] == old_route
        assert len(world.runtime.containers_by_id) == 1  # the new one was removed
        assert world.releases.live("shop").number == 1
        assert world.releases.get("shop", 2).state is ReleaseState.FAILED
        assert any("fake log line" in line for line in seen)
    finally:
        await world.runtime.close()


async def test_a_failed_checks_log_lines_hide_config_values(world):
    world.apps.create("shop")
    url = "postgres://app:pw-8c1f2e9a@db:5432/shop"
    world.apps.replace_config("shop", {"DATABASE_URL": url, "DEBUG": "1"})
    world.runtime.status = 500
    world.runtime.tail = [f"connecting to {url}", "password pw-8c1f2e9a refused", "debug 1"]
    out, seen = lines()
    with pytest.raises(DeployFailed) as failed:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, out)
    try:
        shown = "\n".join(seen) + str(failed.value)
        assert "connecting to [DATABASE_URL]" in shown and "debug 1" in shown
        assert "password [DATABASE_URL password] refused" in shown
        assert "pw-8c1f2e9a" not in shown
        events = [e.message for e in EventStore(world.db).list("shop")]
        assert any("[DATABASE_URL]" in m for m in events) and "pw-8c1f2e9a" not in str(events)
    finally:
        await world.runtime.close()


async def test_a_failed_build_starts_nothing(world):
    world.apps.create("shop")
    world.builder.fail = True
    with pytest.raises(DeployFailed, match="RUN pip install"):
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
    assert world.runtime.containers_by_id == {} and "shop" not in world.router.routes


async def test_without_a_domain_the_deploy_says_how_to_add_one(tmp_path):
    with world_in(tmp_path, domain="") as world:
        world.apps.create("shop")
        out, seen = lines()
        try:
            await world.deployer.deploy_push("shop", "a" * 40, world.source, out)
            assert any("berth domains:add shop DOMAIN" in line for line in seen)
        finally:
            await world.runtime.close()


async def test_cancelling_before_the_swap_removes_the_new_instances(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        world.runtime.status = 503  # never healthy: the deploy waits in its check
        task = asyncio.create_task(
            world.deployer.deploy_push("shop", "b" * 40, world.source, lines()[0]))
        while len(world.runtime.containers_by_id) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(world.runtime.containers_by_id) == 1
        failed = world.releases.get("shop", 2)
        assert failed.state is ReleaseState.FAILED and "interrupted" in failed.error
    finally:
        await world.runtime.close()


async def test_scaling_keeps_running_instances_and_adds_new_ones(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        first = set(world.runtime.containers_by_id)
        await world.deployer.scale("shop", {"web": 2, "worker": 1}, lines()[0])
        assert first <= set(world.runtime.containers_by_id)
        assert len(world.runtime.containers_by_id) == 3
        assert len(world.router.routes["shop"][1]) == 2
        with pytest.raises(Exception, match="no process type 'clock'"):
            await world.deployer.scale("shop", {"clock": 1}, lines()[0])
    finally:
        await world.runtime.close()


async def test_a_start_failing_midway_removes_the_instances_already_started(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        before = set(world.runtime.containers_by_id)
        world.runtime.fail_after = 2  # web.2 starts, web.3 cannot
        with pytest.raises(Exception, match="no space left on device"):
            await world.deployer.scale("shop", {"web": 3}, lines()[0])
        assert set(world.runtime.containers_by_id) == before
        assert len(world.router.routes["shop"][1]) == 1
    finally:
        await world.runtime.close()


async def test_a_second_operation_waits_and_says_so(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        out1, _ = lines()
        out2, seen2 = lines()
        await asyncio.gather(world.deployer.restart("shop", out1),
                             world.deployer.restart("shop", out2))
        assert any("Waiting for the operation in progress on shop" in s for s in seen2)
    finally:
        await world.runtime.close()


async def test_old_instances_stop_in_the_background(world):
    """A push returns once traffic has moved: an old process slow to exit holds up
    neither that push nor the next one (which does not see it), and ps:stop waits."""
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        world.runtime.stop_delay = 3.0
        started = time.monotonic()
        await world.deployer.deploy_push("shop", "b" * 40, world.source, lines()[0])
        out, seen = lines()
        await world.deployer.deploy_push("shop", "c" * 40, world.source, out)
        assert time.monotonic() - started < 2.5
        assert not any("Waiting for the operation" in s for s in seen)
        assert any("stopping web.1 in the background" in s for s in seen)
        # v1's and v2's web instances are still exiting; only v3's serves.
        assert len(world.runtime.containers_by_id) == 3
        serving = {u.port for u in world.router.routes["shop"][1]}
        exiting = {c.id for c in world.runtime.containers_by_id.values()
                   if c.spec.publish_port not in serving}
        assert len(exiting) == 2 and world.deployer.stopping("shop") == exiting  # `berth ps`
        assert len(world.router.routes["shop"][1]) == 1
        assert world.deployer.busy("shop")  # the reconciler leaves the app alone meanwhile
        await world.deployer.stop("shop", lines()[0])
        assert world.runtime.containers_by_id == {}
        assert not world.deployer.busy("shop")
    finally:
        world.runtime.stop_delay = 0.0
        await world.runtime.close()


async def test_removed_instances_leave_their_last_lines_behind(world):
    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        first = next(iter(world.runtime.containers_by_id.values())).spec.name
        await world.deployer.deploy_push("shop", "b" * 40, world.source, lines()[0])
        await world.deployer.settled(10)
        saved = world.history.tail("shop", 10)
        assert [(line.source, line.text) for line in saved] == [
            ("web.1", f"{first} shutting down")]
        await world.deployer.destroy("shop", lines()[0])
        assert world.history.tail("shop", 10) == []
        assert world.runtime.networks_removed == ["shop"]
    finally:
        await world.runtime.close()


async def test_persistent_storage_is_mounted_in_every_kind_of_container(world, tmp_path):
    world.apps.create("shop")
    world.apps.add_mount("shop", "/app/data")
    (world.source / "Procfile").write_text("web: gunicorn app\nrelease: python migrate.py\n")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        host = str(tmp_path / "data" / "storage" / "shop" / "app%2Fdata")
        (web,) = world.runtime.containers_by_id.values()
        assert web.spec.mounts == ((host, "/app/data"),)
        (release_phase,) = world.runtime.one_offs
        assert release_phase.labels["berth.role"] == "release"
        assert release_phase.mounts == ((host, "/app/data"),)
        await world.deployer.run_one_off("shop", "ls /app/data", lines()[0])
        assert world.runtime.one_offs[-1].mounts == ((host, "/app/data"),)
        assert Path(host).is_dir()
    finally:
        await world.runtime.close()


async def test_unusable_storage_fails_the_deploy_with_one_line(world, tmp_path):
    world.apps.create("shop")
    world.apps.add_mount("shop", "/app/data")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "storage").write_text("a file where the directory should be")
    try:
        with pytest.raises(BerthError, match="persistent storage of shop") as caught:
            await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        assert "\n" not in str(caught.value)
        assert world.runtime.containers_by_id == {}
    finally:
        await world.runtime.close()


async def test_the_reconciler_keeps_one_container_per_instance(world):
    """An agent killed after a restart's swap, before the old container stopped, leaves
    two web.1 of the live release: the next reconcile retires one."""
    from dataclasses import replace as copy

    from agent.deploy.reconciler import Reconciler

    world.apps.create("shop")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        (web,) = world.runtime.containers_by_id.values()
        await world.runtime.start(copy(web.spec, name=web.spec.name + "-twin",
                                       publish_port=web.spec.publish_port + 1))
        reconciler = Reconciler(world.apps, world.releases, world.runtime,
                                world.rollout, world.deployer)
        await reconciler.reconcile_app("shop")
        await world.deployer.settled(10)
        assert len(world.runtime.containers_by_id) == 1
        assert len(world.router.routes["shop"][1]) == 1
    finally:
        await world.runtime.close()


async def test_a_one_off_runs_the_live_release_with_its_config(world):
    from agent.deploy.errors import NothingToRelease

    world.apps.create("shop")
    with pytest.raises(NothingToRelease):
        await world.deployer.run_one_off("shop", "python manage.py migrate", lines()[0])
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        await world.deployer.release_config("shop", ConfigChange({"DATABASE_URL": "postgres://db"}),
                                            lines()[0])
        world.apps.replace_config("shop", {"DATABASE_URL": "postgres://db", "LATER": "1"})
        live = world.releases.live("shop")
        world.runtime.release_exit = 7
        out, seen = lines()
        code = await world.deployer.run_one_off("shop", "python manage.py migrate", out)
        assert code == 7 and seen == ["ran /bin/sh -c python manage.py migrate"]
        spec = world.runtime.one_offs[-1]
        assert spec.image == live.image and spec.restart_policy == "no"
        assert spec.env["DATABASE_URL"] == "postgres://db" and spec.env["DYNO"].startswith("run.")
        assert spec.env["LATER"] == "1"  # stored with --no-restart: a new process sees it
        assert spec.labels["berth.role"] == "run" and spec.publish_port is None
        # Not an instance of the formation: the route and the instances are untouched.
        assert len(world.router.routes["shop"][1]) == 1
        with pytest.raises(BerthError, match="nothing to run"):
            await world.deployer.run_one_off("shop", "  ", lines()[0])
    finally:
        world.runtime.release_exit = 0
        await world.runtime.close()


async def test_failed_release_phase_aborts_the_config_release(world):
    world.apps.create("shop")
    (world.source / "Procfile").write_text("web: gunicorn app\nrelease: migrate\n")
    try:
        await world.deployer.deploy_push("shop", "a" * 40, world.source, lines()[0])
        world.runtime.release_exit = 3
        with pytest.raises(DeployFailed, match="release command exited with code 3"):
            await world.deployer.release_config("shop", ConfigChange({"A": "1"}), lines()[0])
        assert world.releases.live("shop").number == 1
        assert world.apps.config("shop") == {}  # a failed release changes nothing
    finally:
        await world.runtime.close()
