"""install.sh --uninstall and --uninstall --purge on a server laid out as an install
leaves it (SysV init scripts, the code, the git hooks, a data_dir of its own, logs, the
berth user), in a container: removing the berth user or Berth's files on this machine
would break every other test. Runs only under the shared lock of tests/e2e and
tests/install (it starts and removes a container)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import STAND_IN_IMAGE, docker_problem

REPO = Path(__file__).resolve().parents[2]
NAME = "berth-install-test-uninstall"

pytestmark = [pytest.mark.docker]

INSTALLED = r"""
set -e
useradd --system --create-home --home-dir /home/berth --shell /bin/sh berth
mkdir -p /opt/berth/venv/bin /usr/local/bin /usr/local/sbin /etc/berth /var/log/berth \
    /srv/berth/repos/myapp.git/hooks /srv/log
printf '#!/bin/sh\n' >/opt/berth/venv/bin/berth && chmod 0755 /opt/berth/venv/bin/berth
ln -s /opt/berth/venv/bin/berth /usr/local/bin/berth
printf '[paths]\ndata_dir = "/srv/berth"\nlog_dir = "/srv/log"\n' >/etc/berth/berth.toml
echo state >/srv/berth/berth.db
echo ref >/srv/berth/repos/myapp.git/HEAD
printf '#!/bin/sh\nexec berth hook\n' >/srv/berth/repos/myapp.git/hooks/pre-receive
echo 'table inet berth {}' >/etc/berth/firewall.nft
echo line >/var/log/berth/agent.log
echo line >/srv/log/access.log
printf '#!/bin/sh\n' >/usr/local/sbin/berth-supervise
printf '#!/bin/sh\n' >/usr/local/sbin/berth-firewall-boot
for name in berth berth-firewall; do
    printf '#!/bin/sh\n### BEGIN INIT INFO\n# Provides: %s\n# Default-Start: 2 3 4 5\n# Default-Stop: 0 1 6\n### END INIT INFO\n[ "$1" != stop ] || touch /tmp/%s.stopped\n' \
        "$name" "$name" >"/etc/init.d/$name"
    chmod 0755 "/etc/init.d/$name"
    update-rc.d "$name" defaults >/dev/null 2>&1
done
"""
PATHS = ["/opt/berth", "/usr/local/bin/berth", "/usr/local/sbin/berth-supervise",
         "/usr/local/sbin/berth-firewall-boot", "/etc/berth/firewall.nft", "/etc/init.d/berth",
         "/etc/init.d/berth-firewall", "/etc/rc2.d/S01berth",
         "/srv/berth/repos/myapp.git/hooks/pre-receive",
         "/srv/berth/berth.db", "/srv/berth/repos/myapp.git/HEAD", "/etc/berth/berth.toml",
         "/etc/berth", "/var/log/berth/agent.log", "/srv/log/access.log", "/home/berth", "/tmp/berth.stopped",
         "/tmp/berth-firewall.stopped"]
DATA = {"/srv/berth/berth.db", "/srv/berth/repos/myapp.git/HEAD", "/etc/berth/berth.toml",
        "/etc/berth", "/var/log/berth/agent.log", "/srv/log/access.log", "/home/berth"}


def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=120,
                          check=False)


def inside(script: str) -> subprocess.CompletedProcess[bytes]:
    return docker("exec", NAME, "sh", "-c", script)


@pytest.fixture
def server() -> Iterator[None]:
    """A Debian container laid out as install.sh leaves a server, install.sh beside it."""
    if docker_problem():
        pytest.skip(f"needs docker: {docker_problem()}")
    docker("rm", "-f", NAME)
    started = docker("run", "-d", "--name", NAME, STAND_IN_IMAGE, "sleep", "600")
    assert started.returncode == 0, started.stderr
    try:
        copied = docker("exec", "-i", NAME, "sh", "-c", "cat >/install.sh",
                        stdin=(REPO / "install.sh").read_bytes())
        assert copied.returncode == 0, copied.stderr
        laid = inside(INSTALLED)
        assert laid.returncode == 0, laid.stderr
        assert present() == set(PATHS) - {"/tmp/berth.stopped", "/tmp/berth-firewall.stopped"}
        yield
    finally:
        docker("rm", "-f", NAME)


def present() -> set[str]:
    listed = inside(" ; ".join(f"[ ! -e {path} ] || echo {path}" for path in PATHS))
    return set(listed.stdout.decode().split())


def has_user() -> bool:
    return inside("id berth").returncode == 0


def test_uninstall_keeps_data_config_logs_and_the_user(server: None):
    result = inside("sh /install.sh --uninstall")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert ("Kept: /srv/berth (repositories, releases), /etc/berth/berth.toml and the logs "
            "(/var/log/berth /srv/log);") in out
    assert out.splitlines()[-1] == "-----> Berth is uninstalled."
    assert present() == DATA | {"/tmp/berth.stopped", "/tmp/berth-firewall.stopped"}
    assert has_user()


def test_uninstall_purge_removes_data_config_logs_and_the_user(server: None):
    result = inside("sh /install.sh --uninstall --purge")
    assert result.returncode == 0, result.stderr
    assert "Purging apps, data, configuration and logs" in result.stdout.decode()
    assert present() == {"/tmp/berth.stopped", "/tmp/berth-firewall.stopped"}
    assert not has_user()
    assert inside("ls -A /srv").stdout == b""


@pytest.mark.parametrize("setting", ['data_dir = "/var/lib"', 'log_dir = "/"',
                                     'data_dir = "/srv/berth/.."'])
def test_purge_refuses_a_system_directory_before_anything_changes(server: None, setting: str):
    key, path = setting.split(" = ")
    inside(f"sed -i 's|^{key} = .*|{setting}|' /etc/berth/berth.toml")
    before = present()
    result = inside("sh /install.sh --uninstall --purge")
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == (f"install.sh: --purge: refusing to remove {path.strip(chr(34))} "
                                      "(from /etc/berth/berth.toml); remove Berth's files there "
                                      "yourself\n")
    assert present() == before and has_user()


def test_purge_refuses_a_data_dir_without_berths_database(server: None):
    inside("mkdir -p /srv/docker/volumes && echo mine >/srv/docker/volumes/db && "
           "sed -i 's|^data_dir = .*|data_dir = \"/srv/docker\"|' /etc/berth/berth.toml")
    before = present()
    result = inside("sh /install.sh --uninstall --purge")
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == (
        "install.sh: --purge: refusing to remove /srv/docker (from /etc/berth/berth.toml): it "
        "holds no berth.db, so it is not Berth's data_dir; remove Berth's files there yourself\n")
    assert present() == before and has_user()
    assert inside("cat /srv/docker/volumes/db").stdout == b"mine\n"


def test_purge_takes_a_glob_in_log_dir_literally(server: None):
    inside("mkdir -p /srv/logbook && echo mine >/srv/logbook/keep && "
           "sed -i 's|^log_dir = .*|log_dir = \"/srv/lo*\"|' /etc/berth/berth.toml")
    result = inside("sh /install.sh --uninstall --purge")
    assert result.returncode == 0, result.stderr
    assert inside("cat /srv/logbook/keep /srv/log/access.log").stdout == b"mine\nline\n"
    assert present() == {"/srv/log/access.log", "/tmp/berth.stopped",
                         "/tmp/berth-firewall.stopped"}


def test_purge_removes_only_berths_logs_from_log_dir(server: None):
    inside("echo mine >/srv/log/notes && mkdir /srv/log/apps && echo '{}' >/srv/log/apps/web.jsonl"
           " && echo older >/srv/log/access.log.1")
    result = inside("sh /install.sh --uninstall --purge")
    assert result.returncode == 0, result.stderr
    assert "       Kept /srv/log: it holds files that are not Berth's logs" in \
        result.stdout.decode().splitlines()
    assert inside("ls -A /srv/log").stdout == b"notes\n"
    assert present() == {"/tmp/berth.stopped", "/tmp/berth-firewall.stopped"}
