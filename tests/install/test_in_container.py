"""install.sh on a fresh server: a container with systemd as PID 1 and one with SysV
init (no systemd), with no checkout of Berth in it. Install the way the README says, with
the one line (`curl -fsSL BASE_URL/install.sh | sh -s -- ...`) from a release cut by
`.ci/release` and served over HTTP from the host, with a cloud-style authorized_keys line;
push an app into the server over SSH (a Dockerfile app, built by the server's own Docker engine), run the
one line of a later release (an upgrade to another wheel) while clients send requests for the app through the proxy
(none may fail: under systemd berth.socket keeps the ports open, without it the agent
restarts in place), restart the container (the agent, the app and the firewall table
come back by themselves), then uninstall, and purge (the app's container, network and
image go too). Runs only under the shared lock of tests/e2e and tests/install (it starts
and removes containers)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import docker_problem
from tests.install.harness import Published, Releases

REPO = Path(__file__).resolve().parents[2]
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
IMAGES = {"systemd": "berth-install-test/systemd:1", "sysvinit": "berth-install-test/sysvinit:2"}
# What makes each init shut down cleanly, as on a reboot (both ignore Docker's SIGTERM,
# which would leave `docker restart` waiting out its timeout before a kill).
STOP_SIGNALS = {"systemd": "SIGRTMIN+3", "sysvinit": "SIGINT"}  # SIGINT: ctrlaltdel
# The app's base image, moved into the server's engine (no registry is reachable there):
# the fresh-server image itself, small and with python3.
APP_BASE = IMAGES["systemd"]
APP_HOST = "load.apps.example.com"
APP_BODY = "hello from a Dockerfile"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt3ZkOtt0LHlyhz4mD0Gz3hrrQmT8GEGEPYXQH0vBEp"
SETTINGS = "--domain apps.example.com --email ops@example.com"
CLOUD_LINE = f'no-port-forwarding,no-agent-forwarding,command="echo \'use debian\'" {KEY} cloud\n'

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args[:3])}: {result.stdout}{result.stderr}"
    return result


def sh(name: str, script: str, *, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return docker("exec", "-e", f"PIP_CERT={HOST_CA_BUNDLE}", name, "sh", "-c", script,
                  check=check, timeout=timeout)


def wait_until(name: str, script: str, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh(name, script, check=False).returncode == 0:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def pip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip's cache, shared by the servers of this module: the second one installs the
    same packages without downloading them again."""
    return tmp_path_factory.mktemp("pip-cache")


@pytest.fixture(params=sorted(IMAGES))
def server(request: pytest.FixtureRequest, pip_cache: Path) -> Iterator[str]:
    if docker_problem():
        pytest.skip(f"needs docker: {docker_problem()}")
    image = IMAGES[request.param]
    if docker("image", "inspect", image, check=False).returncode:
        pytest.fail(f"image {image} is missing")
    name = f"berth-install-test-{request.param}"
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
           "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
           "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
           "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
           "--tmpfs", "/run/lock", "--stop-signal", STOP_SIGNALS[request.param],
           "-v", f"{pip_cache}:/root/.cache/pip", image, "/sbin/init")
    try:
        # Installing during boot races the init's own clean-up of /tmp: wait for the end.
        assert wait_until(name, "systemctl is-system-running --wait >/dev/null 2>&1; "
                          "pgrep -x sshd", timeout=120)
        docker("cp", str(REPO / "tests" / "apps" / "dockerfile"), f"{name}:/root/app")
        docker("cp", HOST_CA_BUNDLE, f"{name}:{HOST_CA_BUNDLE}")
        sh(name, f"mkdir -p /root/.ssh && printf '%s' \"{CLOUD_LINE}\" >/root/.ssh/authorized_keys")
        yield name
    finally:
        docker("rm", "-f", name, check=False)


# Clients of the proxy inside the server, two on keep-alive connections and two opening
# one per request, until /tmp/load.stop exists; prints what they got. Each asks for the
# pushed app: anything but its 200 (a 404 from a proxy without its routes, a 5xx, a
# refused or reset connection, a timeout) is a failure.
LOAD = """
import http.client, json, os, threading, time
results = {"answered": 0, "failures": [], "statuses": {}}
lock = threading.Lock()
def client(keep_alive):
    connection = None
    while not os.path.exists("/tmp/load.stop"):
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=60)
            connection.request("GET", "/", headers={"Host": "%s"})
            response = connection.getresponse()
            response.read()
            with lock:
                status = str(response.status)
                results["statuses"][status] = results["statuses"].get(status, 0) + 1
                if response.status != 200:
                    results["failures"].append(status)
                else:
                    results["answered"] += 1
            if response.will_close or not keep_alive:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            with lock:
                results["failures"].append(repr(exc))
            if connection is not None:
                connection.close()
            connection = None
        time.sleep(0.01)
threads = [threading.Thread(target=client, args=(keep,)) for keep in (True, True, False, False)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(120)
print(json.dumps(results))
"""


def upgraded_under_load(server: str, install: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the installer again while LOAD runs in the server; its result and LOAD's."""
    sh(server, "rm -f /tmp/load.stop")
    subprocess.run(["docker", "exec", "-i", server, "sh", "-c", "cat >/tmp/load.py"],
                   input=LOAD % APP_HOST, text=True, check=True, capture_output=True, timeout=60)
    with subprocess.Popen(["docker", "exec", server, "python3", "/tmp/load.py"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as load:
        try:
            time.sleep(2)  # requests answered before the upgrade too
            again = sh(server, install, check=False)
            time.sleep(2)  # and after it
            sh(server, "touch /tmp/load.stop")
            out, err = load.communicate(timeout=180)
        finally:
            load.kill()
    assert load.returncode == 0, err
    return again, json.loads(out)


# Inside the server: a key that may push, the Dockerfile test app on APP_BASE, and a
# real push over SSH to the server's own sshd.
PUSH = f"""
set -e
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/push
berth keys:add pusher < /root/.ssh/push.pub
rm -rf /tmp/load && cp -r /root/app /tmp/load && cd /tmp/load
sed -i 's|^FROM .*|FROM {APP_BASE}|' Dockerfile
git init -q -b main . && git add -A
git -c user.name=dev -c user.email=dev@example.com commit -qm app
GIT_SSH_COMMAND='ssh -i /root/.ssh/push -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' \
    git push -q berth@localhost:load main 2>&1
"""
APP_ANSWERS = f"curl -fsS -m 5 -H 'Host: {APP_HOST}' http://127.0.0.1/ | grep -q '{APP_BODY}'"


def push_app(server: str) -> None:
    """Push the Dockerfile app into the installed server; it must then answer."""
    with subprocess.Popen(["docker", "save", APP_BASE], stdout=subprocess.PIPE) as save:
        try:
            loaded = subprocess.run(["docker", "exec", "-i", server, "docker", "load", "-q"],
                                    stdin=save.stdout, capture_output=True, text=True,
                                    check=False, timeout=300)
        finally:
            save.kill()
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    pushed = sh(server, PUSH, check=False, timeout=600)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr + logs(server)
    assert f"is live: http://{APP_HOST}" in pushed.stdout, pushed.stdout
    assert sh(server, APP_ANSWERS, check=False).returncode == 0, logs(server)


def logs(server: str) -> str:
    return sh(server, "tail -n 30 /var/log/berth/agent.log /var/log/berth/agent.stderr; "
              "journalctl -u berth -n 30 --no-pager; ps ax", check=False).stdout


OLD_SOCKET = ("sed -i -e 's/^ListenStream=80$/ListenStream=0.0.0.0:80/' "
              "-e 's/^ListenStream=443$/ListenStream=0.0.0.0:443/' -e '/^BindIPv6Only=/d' "
              "/etc/systemd/system/berth.socket")


def upgrade_from_ipv4_only_socket(server: str, install: str) -> None:
    """An install from before IPv6 (berth.socket on 0.0.0.0 only, the running agent
    holding those sockets) upgrades to the dual-stack socket and serves again."""
    sh(server, f"systemctl stop berth.service berth.socket && {OLD_SOCKET} && "
               "systemctl daemon-reload && systemctl start berth.socket berth.service")
    assert "0.0.0.0:80" in sh(server, "cat /etc/systemd/system/berth.socket").stdout
    assert wait_until(server, APP_ANSWERS, timeout=120), logs(server)
    upgraded = sh(server, install, check=False)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr + logs(server)
    unit = sh(server, "cat /etc/systemd/system/berth.socket").stdout
    assert "ListenStream=80\n" in unit and "BindIPv6Only=both" in unit, unit
    assert sh(server, "systemctl is-active berth.socket berth.service").stdout.split() == [
        "active", "active"]
    assert wait_until(server, APP_ANSWERS, timeout=120), logs(server)


def one_line(base: str, arguments: str) -> str:
    """The README's install line for the release published at BASE."""
    return f"curl -fsSL {base}/install.sh | sh -s -- {arguments}"


def runs_release(server: str, site: Published, base: str, version: str, asked: int) -> None:
    """The server's Berth, installed and running, is the release at BASE: what the one line
    fetched since request ASKED is its install.sh and its wheel (whose SHA-256 install.sh
    checked), and `berth version` names VERSION, installed and running."""
    wheel = f"berth-{version}-py3-none-any.whl"
    path = base.removeprefix(site.base)
    assert site.requests[asked:] == [f"{path}/install.sh", f"{path}/{wheel}"], site.requests
    running = f"berth version | grep -qx 'agent {version}+[0-9a-f]* (running)'"
    assert wait_until(server, running, timeout=60), sh(server, "berth version").stdout
    lines = sh(server, "berth version").stdout.splitlines()
    build = lines[0].split()[1] if lines else ""
    assert build.startswith(f"{version}+") and lines == [
        f"berth {build} (installed)", f"agent {build} (running)"], lines


def installed(server: str, releases: Releases) -> None:
    """The first install, from the first release: what it says, what it set up."""
    asked = len(releases.site.requests)
    first = sh(server, one_line(releases.first, SETTINGS), check=False)
    assert first.returncode == 0, first.stdout + first.stderr + logs(server)
    runs_release(server, releases.site, releases.first, releases.first_version, asked)
    lines = first.stdout.splitlines()
    if server.endswith("sysvinit"):  # its docker.io was there and running: used as it is
        assert "Using the Docker engine already running" in first.stdout
        assert "docker.io" not in first.stdout
    assert "The firewall, before it is turned on:" in first.stdout
    assert any(line.strip().startswith("*.apps.example.com  A  ") for line in lines)
    assert lines[-2].strip() == "git remote add deploy berth@apps.example.com:myapp"
    assert lines[-1].strip().startswith("git push deploy main")
    keys = sh(server, "berth keys").stdout
    assert "admin" in keys, keys  # the key behind cloud options was found
    assert "table inet berth" in sh(server, "nft list tables").stdout
    # The agent saved what it applied for the boot loader.
    assert "table inet berth {" in sh(server, "cat /etc/berth/firewall.nft").stdout
    doctor = sh(server, "berth doctor", check=False).stdout
    for line in ("ok    docker engine", "ok    port 80", "ok    port 443", "ok    firewall",
                 "ok    agent restarts: none"):
        assert line in doctor, doctor

    # Least privilege as installed (repositories come with the first app: the e2e tests).
    modes = sh(server, "stat -c '%n %a %U' /var/lib/berth /var/log/berth "
                       "/var/lib/berth/berth.db").stdout.splitlines()
    assert modes == ["/var/lib/berth 711 root", "/var/log/berth 750 root",
                     "/var/lib/berth/berth.db 600 root"], modes
    if server.endswith("systemd"):
        assert sh(server, "systemctl show -p UMask berth").stdout.strip() == "UMask=0027"


def upgraded(server: str, releases: Releases) -> str:
    """The one line of the later release, run while clients use the pushed app: none of
    their requests fails and the agent runs the later wheel. The line that ran it."""
    upgrade = one_line(releases.later, SETTINGS)  # same key, same config
    keys = sh(server, "berth keys").stdout
    asked = len(releases.site.requests)
    again, load = upgraded_under_load(server, upgrade)
    assert again.returncode == 0, again.stdout + again.stderr
    if load["failures"]:
        print(again.stdout, logs(server), sep="\n")  # shown with the failure
    assert load["failures"] == [] and load["answered"] > 100, (
        load["failures"][:3], len(load["failures"]), load["statuses"])
    runs_release(server, releases.site, releases.later, releases.later_version, asked)
    if server.endswith("sysvinit"):
        assert "Restarting the agent in place" in again.stdout, again.stdout
    else:  # the ports belong to berth.socket, the agent to berth.service
        assert sh(server, "systemctl is-active berth.socket berth.service").stdout.split() == [
            "active", "active"]
    assert "may push" not in again.stdout
    assert sh(server, "berth keys").stdout == keys
    return upgrade


def rebooted(server: str) -> None:
    """A clean shutdown and boot, as a reboot: the agent, the app and the firewall come back."""
    docker("restart", server, timeout=180)
    assert wait_until(server, "berth apps"), logs(server)
    assert wait_until(server, APP_ANSWERS, timeout=120), logs(server)  # the app came back
    assert "table inet berth" in sh(server, "nft list tables").stdout
    if server.endswith("systemd"):  # loaded at boot, before the network and the agent
        assert sh(server, "systemctl is-active berth-firewall").stdout.strip() == "active"


def uninstalled(server: str, base: str) -> None:
    """--uninstall keeps data, configuration and running apps; --purge removes them too."""
    removed = sh(server, one_line(base, "--uninstall"), check=False)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Berth is uninstalled." in removed.stdout, removed.stdout
    assert sh(server, "command -v berth", check=False).returncode != 0
    assert "table inet berth" not in sh(server, "nft list tables").stdout
    assert sh(server, "test -e /etc/berth/firewall.nft || test -e /usr/local/sbin/berth-firewall-boot",
              check=False).returncode == 1  # nothing is loaded at the next boot
    assert sh(server, "test -f /var/lib/berth/berth.db && test -f /etc/berth/berth.toml",
              check=False).returncode == 0  # data and configuration kept without --purge
    assert not wait_until(server, "pgrep -f '[b]erth agent'", timeout=6)
    assert sh(server, "docker ps -q --filter label=berth.managed").stdout.strip()  # app runs

    berths = ("docker ps -aq --filter label=berth.managed; "
              "docker network ls -q --filter label=berth.managed; docker images -q 'berth/*'")
    purged = sh(server, one_line(base, "--uninstall --purge"), check=False)
    assert purged.returncode == 0 and "Berth is uninstalled." in purged.stdout, (
        purged.stdout + purged.stderr)
    assert sh(server, berths).stdout.strip() == ""  # the app's container, network and image
    assert sh(server, "id berth", check=False).returncode != 0
    assert sh(server, "for path in /var/lib/berth /etc/berth /var/log/berth; do "
                      "[ ! -e $path ] || echo $path; done").stdout == ""


def test_install_upgrade_reboot_uninstall(server: str, bridge_releases: Releases) -> None:
    installed(server, bridge_releases)
    push_app(server)
    upgrade = upgraded(server, bridge_releases)
    rebooted(server)
    if server.endswith("systemd"):
        upgrade_from_ipv4_only_socket(server, upgrade)
    uninstalled(server, bridge_releases.later)
