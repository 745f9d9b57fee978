"""Early start (agent.deploy.earlystart): its pure rules, and the deployer's early path
against the fakes of tests/deploy/fakes.py (real HTTP health checks, real SQLite). The real
engine's side (the same files as the image, owners and modes included) is checked in
tests/e2e/test_push_deploy.py."""

from __future__ import annotations

import asyncio
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from agent.build.context import write_code_archive, write_context
from agent.build.dockerfile import code_copy, ends_with_code_copy
from agent.build.model import BuildPlan
from agent.build.output import BuildOutput
from agent.deploy import earlystart
from agent.deploy.errors import DeployFailed
from agent.releases import ReleaseState
from tests.deploy.fakes import BASE, GROUP, PASSWD, lines

# the pure rules ----------------------------------------------------------------------------


def test_the_app_users_ids_come_from_passwd_and_the_group_of_its_name() -> None:
    assert earlystart.parse_ids(PASSWD, GROUP, "berth") == (999, 998)
    assert earlystart.parse_ids(PASSWD, "root:x:0:\n", "berth") is None  # no berth group
    assert earlystart.parse_ids("berthold:x:5:5::/:/bin/sh\n", GROUP, "berth") is None
    assert earlystart.parse_ids("berth:x:abc:1::/:/bin/sh\n", GROUP, "berth") is None


@pytest.mark.parametrize(("command", "mounts", "allowed"), [
    ("", (), True),
    ("", (("/var/lib/berth/storage/shop/data", "/data"),), True),
    ("", (("/h", "/application"),), True),
    ("python manage.py migrate", (), False),  # must run before any instance starts
    ("", (("/h", "/app/uploads"),), False),  # the tree would be written into the mount
    ("", (("/h", "/app"),), False),
])
def test_early_start_is_allowed_without_a_release_command_or_storage_in_app(
    command: str, mounts: tuple[tuple[str, str], ...], allowed: bool
) -> None:
    assert earlystart.allowed(command, mounts) is allowed


def test_a_dockerfile_qualifies_only_when_the_code_copy_into_app_is_last() -> None:
    head = "FROM x\nUSER berth\nWORKDIR /app\nCMD [\"run\"]\n"
    assert ends_with_code_copy(head + code_copy() + "\n")
    assert not ends_with_code_copy(head + code_copy() + "\nRUN python manage.py collectstatic\n")
    assert not ends_with_code_copy(head.replace("/app", "/srv") + code_copy() + "\n")
    assert not ends_with_code_copy(head + 'COPY --chown=berth:berth ["app/public/", "./"]\n')


def test_the_build_stream_names_the_final_steps_base_as_that_step_begins() -> None:
    output = BuildOutput(10)
    stream = [
        "Step 1/3 : FROM x\n", " ---> aaaaaaaaaaaa\n", "Step 2/3 : CMD run\n",
        " ---> Using cache\n", " ---> bbbbbbbbbbbb\n",
    ]
    for text in stream:
        output.feed({"stream": text})
        assert output.final_step_base is None
    output.feed({"stream": "Step 3/3 : COPY app/ ./\n"})
    assert output.final_step_base == "bbbbbbbbbbbb"


def code_archive(source: Path) -> bytes:
    out = io.BytesIO()
    write_code_archive(source, 999, 998, "berth", out)
    return out.getvalue()


def members(data: bytes) -> dict[str, tuple[int, int, str, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: (m.uid, m.gid, m.uname, m.mode) for m in archive.getmembers()}


def test_the_code_archive_holds_what_the_context_gives_the_code_copy(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("x = 1\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    (source / "link").symlink_to("pkg")
    (source / ".dockerignore").write_text("secret\n")
    (source / "secret").write_text("no\n")
    context = io.BytesIO()
    write_context(BuildPlan(builder="python", dockerfile="FROM x\n"), source, context)
    in_context = {name.removeprefix("app/"): (mode,) for name, (_, _, _, mode)
                  in members(context.getvalue()).items() if name.startswith("app/")}
    code = members(code_archive(source))
    assert {name: (mode,) for name, (_, _, _, mode) in code.items()} == in_context
    assert set(code) == {".dockerignore", "link", "pkg", "pkg/mod.py", "run.sh"}
    assert {(uid, gid, user) for uid, gid, user, _ in code.values()} == {(999, 998, "berth")}


# the deployer's early path -----------------------------------------------------------------

async def images(deployed) -> set[str]:
    """The images of the app's containers, once the old ones are stopped."""
    await deployed.deployer.settled(5)
    return {c.spec.image for c in deployed.runtime.containers_by_id.values()}


async def test_instances_start_from_the_base_with_the_code_while_the_image_commits(early):
    early.apps.create("shop")
    out, seen = lines()
    try:
        release = await early.deployer.deploy_push("shop", "a" * 40, early.source, out)
        assert release.state is ReleaseState.LIVE and release.image == "sha256:berth/shop:v1"
        events = early.runtime.events
        assert events.index(f"start {BASE}") < events.index("built sha256:berth/shop:v1")
        (web,) = early.runtime.containers_by_id.values()
        assert web.spec.image == BASE
        assert members(early.runtime.codes[web.id]) == members(code_archive(early.source))
        assert not web.spec.code.exists()  # the archive lived as long as the deploy
        assert seen.index("built") < next(i for i, line in enumerate(seen)
                                          if line.startswith("-----> Starting web.1"))
        assert any("is live" in line for line in seen)
    finally:
        await early.runtime.close()


async def test_the_next_push_creates_its_instances_before_the_base_is_confirmed(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.runtime.events.clear()
        await early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0])
        events = early.runtime.events
        assert events[:3] == [f"create {BASE}", f"announce {BASE}", f"start {BASE}"]
        assert early.releases.live("shop").image == "sha256:berth/shop:v2"
    finally:
        await early.runtime.close()


async def test_a_new_base_discards_the_prediction_and_starts_from_the_new_base(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.builder.base = "sha256:new-dependencies"
        early.runtime.events.clear()
        out, seen = lines()
        release = await early.deployer.deploy_push("shop", "b" * 40, early.source, out)
        assert release.state is ReleaseState.LIVE
        assert early.runtime.events[0] == f"create {BASE}"  # the guess, created...
        assert f"start {BASE}" not in early.runtime.events  # ...and never started
        assert await images(early) == {"sha256:new-dependencies"}  # the guess left nothing behind
        assert not any(line.startswith("-----> Starting") and BASE in line for line in seen)
    finally:
        await early.runtime.close()


async def test_a_pruned_predicted_base_is_not_used(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.runtime.missing.add(BASE)
        early.runtime.events.clear()
        await early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0])
        assert early.runtime.events[0] == f"announce {BASE}"  # nothing created before it
    finally:
        await early.runtime.close()


async def test_an_image_that_is_not_the_base_plus_the_code_starts_from_the_image(early):
    early.apps.create("shop")
    early.builder.parent = "sha256:something-else"
    out, seen = lines()
    try:
        release = await early.deployer.deploy_push("shop", "a" * 40, early.source, out)
        assert release.state is ReleaseState.LIVE
        assert await images(early) == {"sha256:berth/shop:v1"}
        assert not any(c.spec.code for c in early.runtime.containers_by_id.values())
        assert sum(line.startswith("-----> Starting") for line in seen) == 1
    finally:
        await early.runtime.close()


async def test_a_build_failing_after_the_early_start_fails_the_deploy_with_its_reason(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        serving = early.router.routes["shop"]
        early.builder.fail = True
        with pytest.raises(DeployFailed, match="RUN pip install"):
            await early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0])
        assert early.router.routes["shop"] == serving
        assert len(early.runtime.containers_by_id) == 1  # the early instance is gone
        assert early.releases.get("shop", 2).state is ReleaseState.FAILED
    finally:
        await early.runtime.close()


async def test_a_failing_health_check_is_the_reason_when_the_build_succeeds(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.runtime.status = 500
        settings = early.apps.get("shop").settings
        early.apps.save_settings("shop", replace(settings, health_timeout=0.5))
        with pytest.raises(DeployFailed, match="status 500"):
            await early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0])
        assert len(early.runtime.containers_by_id) == 1
        assert early.releases.live("shop").number == 1
    finally:
        await early.runtime.close()


async def test_a_release_command_or_the_setting_turned_off_means_no_early_start(early):
    early.apps.create("shop")
    try:
        (early.source / "Procfile").write_text("web: gunicorn app\nrelease: migrate\n")
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        assert await images(early) == {"sha256:berth/shop:v1"}
        (early.source / "Procfile").write_text("web: gunicorn app\n")
        without = early.deployer_with(early_start=False)
        await without.deploy_push("shop", "b" * 40, early.source, lines()[0])
        assert await images(early) == {"sha256:berth/shop:v2"}
    finally:
        await early.runtime.close()


async def test_instances_waiting_for_their_base_hold_up_no_other_app(early):
    early.apps.create("shop")
    early.apps.create("blog")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.builder.slow["shop"] = 6.0  # its dependencies install, say
        shop = asyncio.create_task(
            early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0]))
        while not any(c.state == "created" for c in early.runtime.containers_by_id.values()):
            await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        await early.deployer.deploy_push("blog", "c" * 40, early.source, lines()[0])
        assert asyncio.get_running_loop().time() - started < 4.0
        assert not shop.done()
        await shop
    finally:
        await early.runtime.close()


async def test_a_build_failing_before_the_announcement_shows_no_start(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.builder.base = None  # fails at pip install, before its last step
        early.builder.fail = True
        out, seen = lines()
        with pytest.raises(DeployFailed, match="RUN pip install"):
            await early.deployer.deploy_push("shop", "b" * 40, early.source, out)
        assert not any(line.startswith("-----> Starting") for line in seen), seen
        assert len(early.runtime.containers_by_id) == 1  # the guess's container is gone
    finally:
        await early.runtime.close()


async def test_failing_instances_that_were_not_the_image_get_a_second_chance(early):
    early.apps.create("shop")
    early.builder.parent = "sha256:something-else"
    early.runtime.broken_images.add(BASE)
    out, seen = lines()
    try:
        release = await early.deployer.deploy_push("shop", "a" * 40, early.source, out)
        assert release.state is ReleaseState.LIVE
        assert await images(early) == {"sha256:berth/shop:v1"}
    finally:
        await early.runtime.close()


async def test_what_cannot_be_prepared_or_is_too_big_deploys_the_usual_way(early, monkeypatch):
    early.apps.create("shop")
    try:
        early.runtime.unreadable = True  # the base's /etc/passwd cannot be read
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        assert await images(early) == {"sha256:berth/shop:v1"}
        early.runtime.unreadable = False
        monkeypatch.setattr(earlystart, "MAX_CODE_BYTES", 100)
        await early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0])
        assert await images(early) == {"sha256:berth/shop:v2"}
    finally:
        await early.runtime.close()


async def test_a_push_cancelled_while_its_instances_are_created_leaves_none(early):
    early.apps.create("shop")
    try:
        await early.deployer.deploy_push("shop", "a" * 40, early.source, lines()[0])
        early.runtime.create_delay = 0.3
        push = asyncio.create_task(
            early.deployer.deploy_push("shop", "b" * 40, early.source, lines()[0]))
        while not early.runtime.events or early.runtime.events[-1] != f"create {BASE}":
            await asyncio.sleep(0.01)
        push.cancel()  # the pusher hung up while the engine was creating the container
        with pytest.raises(asyncio.CancelledError):
            await push
        await asyncio.sleep(0.4)
        assert [c.spec.image for c in early.runtime.containers_by_id.values()] == [BASE]
        assert early.releases.live("shop").number == 1
    finally:
        await early.runtime.close()


async def test_the_gate_and_the_instances_succeed_together_or_not_at_all():
    from agent.deploy.rollout import _all_or_none

    async def ok(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def bad(seconds: float) -> None:
        await asyncio.sleep(seconds)
        raise ValueError("build failed")

    await _all_or_none(ok(0.01), ok(0.02))
    slow = asyncio.ensure_future(ok(5))
    with pytest.raises(ValueError, match="build failed"):
        await _all_or_none(slow, bad(0.01))
    assert slow.cancelled()  # the first failure ends the other at once
    build = asyncio.ensure_future(asyncio.sleep(5))

    async def gate() -> None:
        await build

    async def cancel_build() -> None:
        await asyncio.sleep(0.01)
        build.cancel()

    with pytest.raises(asyncio.CancelledError):  # a gate cancelled is no success
        await _all_or_none(gate(), ok(0.05), cancel_build())
    work = asyncio.ensure_future(asyncio.sleep(5))
    caller = asyncio.ensure_future(_all_or_none(work, ok(5)))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.cancelled()  # the caller's cancellation ends the work with it
