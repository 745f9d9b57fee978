"""Pushes that try to make Berth read what is not theirs, for real (OpenSSH, git, the
agent, Docker, the proxy): each is rejected with one line naming the file, and another
app keeps answering through the proxy while the bad push runs."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.conftest import APPS, DOMAIN, running_stack
from tests.e2e.harness import AgentProcess, GitUser, Load, WorkTree

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

CALM = "e2e-calm"
HOSTILE = "e2e-hostile"


@pytest.fixture(scope="module")
def stack(e2e_root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    with running_stack(e2e_root) as started:
        yield started


@pytest.fixture(scope="module")
def calm(stack: tuple[AgentProcess, GitUser]) -> AgentProcess:
    agent, developer = stack
    developer.repo(APPS / "static", CALM).push()
    assert agent.get(f"{CALM}.{DOMAIN}")[0] == 200
    return agent


@pytest.fixture(scope="module")
def hostile(stack: tuple[AgentProcess, GitUser]) -> WorkTree:
    return stack[1].repo(APPS / "static", HOSTILE)


def link(tree: WorkTree, name: str, target: str) -> None:
    path = tree.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def push_during_load(agent: AgentProcess, tree: WorkTree) -> str:
    """Push `tree` while clients load the calm app; the push must fail, the clients not."""
    with Load(agent.http_port, f"{CALM}.{DOMAIN}", clients=2) as load:
        result: subprocess.CompletedProcess[str] = tree.push(check=False)
        answered_during = agent.get(f"{CALM}.{DOMAIN}", timeout=5)[0]
    assert result.returncode != 0, result.stdout + result.stderr
    assert answered_during == 200
    assert load.ok > 0 and not load.failures, load.failures[:3]
    return result.stdout + result.stderr


def refusal(output: str, name: str) -> str:
    """The push's error line (the deploy's own heading says the same)."""
    lines = [line for line in output.splitlines()
             if line.startswith("remote: error:") and f"pushed file {name} refused" in line]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_a_procfile_linked_to_dev_zero_is_refused_at_once(calm, hostile):
    link(hostile, "Procfile", "/dev/zero")
    hostile.commit("Procfile -> /dev/zero")
    line = refusal(push_during_load(calm, hostile), "Procfile")
    assert "symbolic link to /dev/zero, outside the pushed tree" in line


def test_an_app_json_linked_to_a_root_only_file_is_refused(calm, hostile, tmp_path):
    (hostile.path / "Procfile").unlink()
    secret = tmp_path / "root-only.json"
    secret.write_text('{"formation": {"web": {"quantity": 3}}, "secret": "hunter2"}')
    secret.chmod(0o600)
    link(hostile, "app.json", str(secret))
    hostile.commit("app.json -> a root-only file")
    output = push_during_load(calm, hostile)
    assert "outside the pushed tree" in refusal(output, "app.json")
    assert "hunter2" not in output


def test_a_symlink_chain_out_of_the_tree_is_refused(calm, hostile):
    (hostile.path / "app.json").unlink()
    link(hostile, "conf/hop2", "/etc/shadow")
    link(hostile, "conf/hop1", "hop2")
    link(hostile, "Procfile", "conf/hop1")
    hostile.commit("Procfile -> conf/hop1 -> conf/hop2 -> /etc/shadow")
    line = refusal(push_during_load(calm, hostile), "Procfile")
    assert "symbolic link to /etc/shadow" in line


def test_a_detection_file_linked_out_is_refused(calm, hostile):
    for name in ("Procfile", "conf/hop1", "conf/hop2"):
        (hostile.path / name).unlink()
    link(hostile, "requirements.txt", "/dev/zero")
    hostile.commit("requirements.txt -> /dev/zero")
    line = refusal(push_during_load(calm, hostile), "requirements.txt")
    assert "outside the pushed tree" in line


def test_an_oversized_procfile_is_refused_with_its_cap(calm, hostile):
    (hostile.path / "requirements.txt").unlink()
    (hostile.path / "Procfile").write_text("web: nginx\n" + "# padding\n" * 120_000)
    hostile.commit("a 1.2 MB Procfile")
    line = refusal(push_during_load(calm, hostile), "Procfile")
    assert "larger than its cap of 1 MiB" in line


def test_the_calm_app_never_noticed(calm):
    assert calm.get(f"{CALM}.{DOMAIN}")[0] == 200
    assert "pushed file" not in calm.ok("releases", CALM)


SECRET = "s3cr3t-" + secrets.token_hex(12)


def test_config_values_never_reach_output_events_or_logs(stack, calm):
    """A config value set over SSH, a build, a release phase and a failed release:
    the value is in none of what Berth prints, records or logs."""
    agent, developer = stack
    said = [agent.ok("config:set", CALM, f"API_TOKEN={SECRET}", f"DATABASE_URL=postgres://u:{SECRET}@db/x")]
    said.append(developer.ssh(f"config:set {CALM} OTHER_TOKEN={SECRET}").stdout.decode())
    tree = WorkTree(developer.root / "work" / CALM, developer)
    tree.write("Procfile", "release: echo migrating\n")
    tree.commit("a release phase")
    said.append(pushed(tree.push()))
    tree.write("Procfile", "release: sh -c 'exit 3'\n")
    tree.commit("a failing release phase")
    failed = tree.push(check=False)
    assert failed.returncode != 0
    said.append(pushed(failed))
    releases = json.loads(agent.ok("releases", CALM, "--json"))
    said += [agent.ok("releases:info", CALM, f"v{r['version']}") for r in releases]
    said += [agent.ok("events", CALM), agent.ok("events", "--json"), agent.ok("apps:info", CALM)]
    assert "migrating" in "".join(said)  # the build and release output is there
    logs = [agent.log_path, *(agent.root / "log").rglob("*")]
    said += [path.read_text(errors="replace") for path in logs if path.is_file()]
    leaks = [text for text in said if SECRET in text]
    assert not leaks, leaks[0][:2000]
    assert SECRET in agent.ok("config", CALM)  # it was set, and is shown on request


def pushed(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_private_modes(agent: AgentProcess) -> None:
    """What Berth made: data_dir traversable only, repositories the berth user's 0750,
    the access log 0640; nothing it made is world-writable."""
    data, log = agent.root / "data", agent.root / "log"
    berth = pwd.getpwnam("berth").pw_uid
    assert mode(data) == 0o711
    assert (mode(data / "repos"), owner(data / "repos")) == (0o750, berth)
    for repo in (data / "repos").iterdir():
        assert (mode(repo), owner(repo)) == (0o750, berth), repo
    assert mode(log) == 0o750
    assert mode(log / "access.log") == 0o640
    for directory, dirs, files in os.walk(agent.root / "data"):
        for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            info = os.lstat(name)
            if not stat.S_ISLNK(info.st_mode) and not stat.S_ISSOCK(info.st_mode):
                assert not info.st_mode & stat.S_IWOTH or name.startswith(
                    str(data / "storage")), name


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def owner(path: Path) -> int:
    return os.lstat(path).st_uid


def test_modes_after_deploy_and_after_a_restart(calm):
    calm.ok("apps")  # the access log has a line by now (the pushes' probes)
    assert_private_modes(calm)
    calm.stop()
    (calm.root / "log" / "access.log").chmod(0o644)  # as an older Berth left it
    (calm.root / "data").chmod(0o755)
    calm.start()
    assert calm.get(f"{CALM}.{DOMAIN}")[0] == 200
    assert_private_modes(calm)
