"""install.sh's preflight, each refusal for real: the whole script run as root against
stand-ins for what it reads of the machine (an os-release file, a meminfo file, `uname`,
`df`, `ss`), refusing with one line and a non-zero exit before anything changes, and
`--force` passing the refusals it may pass; the port check without `ss`, against real
listening sockets; and what it says where no init will bring the agent back."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install.harness import SCRIPT, fake_command, functions, run_shell

DF_HEADER = "Filesystem 1048576-blocks Used Available Capacity Mounted on"


def machine_of(root: Path, *, os_release: str = 'ID=debian\nVERSION_ID="12"\n',
               memory_kb: int = 4_030_000, arch: str = "x86_64",
               free_mb: int = 32_000) -> dict[str, str]:
    """The environment of a run on a machine made of stand-ins (nothing listens on 80 or
    443). The run stops on a missing --source right after the preflight: nothing of
    Berth gets installed."""
    (root / "os-release").write_text(os_release)
    (root / "meminfo").write_text(f"MemTotal:        {memory_kb} kB\n")
    fake_command(root / "bin", "ss", "exit 0")
    fake_command(root / "bin", "uname", f'[ "$1" = -m ] && echo {arch} || exec /bin/uname "$@"')
    fake_command(root / "bin", "df", f"echo '{DF_HEADER}'; echo '/dev/vda1 40000 8000 {free_mb} 20% /'")
    return {"PATH": f"{root / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "BERTH_OS_RELEASE": str(root / "os-release"), "BERTH_MEMINFO": str(root / "meminfo"),
            "BERTH_SOURCE": str(root / "no-berth-here"), "BERTH_PREFIX": str(root / "opt"),
            "BERTH_BIN_DIR": str(root / "bin-berth"),
            "BERTH_CONFIG": str(root / "etc" / "berth.toml")}


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), "--domain", "apps.example.com", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("install.sh's preflight runs as root (tests/run runs as root)")
    return tmp_path


def test_a_supported_machine_passes(root: Path):
    result = install(machine_of(root))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"install.sh: {root}/no-berth-here does not exist\n"


@pytest.mark.parametrize("machine, refusal", [
    ({"os_release": 'ID=centos\nVERSION_ID="9"\n'},
     "unsupported system centos-9 (Debian 12, Ubuntu 22.04/24.04; --force to try anyway)"),
    ({"os_release": 'ID=debian\nVERSION_ID="11"\n'},
     "unsupported system debian-11 (Debian 12, Ubuntu 22.04/24.04; --force to try anyway)"),
    ({"os_release": ""},
     ("cannot tell the system from {root}/os-release (Debian 12, Ubuntu 22.04/24.04; --force "
      "to try anyway)")),
    ({"arch": "riscv64"},
     "unsupported architecture riscv64 (x86_64 or aarch64; --force to try anyway)"),
    ({"memory_kb": 512_000}, "500 MiB of memory; Berth needs 1 GiB (--force to try anyway)"),
    ({"free_mb": 3000},
     "3000 MiB free in /var/lib; Berth needs 5 GiB for images (--force to try anyway)"),
])
def test_a_refusal_is_one_line_and_force_passes_it(root: Path, machine: dict, refusal: str):
    env = machine_of(root, **machine)
    refused = install(env)
    refusal = refusal.format(root=root)
    assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", f"install.sh: {refusal}\n")
    assert sorted(path.name for path in root.iterdir()) == ["bin", "meminfo", "os-release"]
    forced = install({**env, "BERTH_FORCE": "1"})
    assert forced.stderr == f"install.sh: {root}/no-berth-here does not exist\n"
    assert install(env, "--force").stderr == forced.stderr


@pytest.fixture
def no_ss(tmp_path: Path) -> dict[str, str]:
    """A PATH holding what check_port uses, but no `ss`."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("awk", "cat", "cut", "find", "grep", "head", "sed", "tr"):
        found = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True,
                               text=True).stdout.strip()
        (tools / name).symlink_to(found)
    return {"PATH": str(tools)}


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["tcp", "tcp6"])
def listening(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port this test process listens on, over IPv4 or IPv6."""
    family = request.param
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        listener.listen()
        yield listener.getsockname()[1]


CHECK_PORT = functions("say", "note", "die", "has_systemd", "read_settings", "check_port",
                       "port_holder", "proc_port_holder") + 'read_settings; check_port "$1"'


def test_without_ss_the_holder_is_found_in_proc(no_ss: dict[str, str], listening: int):
    result = run_shell(CHECK_PORT, str(listening), env=no_ss)
    me = Path("/proc/self/comm").read_text().strip()
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", (f"install.sh: port {listening} is taken by {me} (pid {os.getpid()}): stop it "
                "first, Berth's proxy needs 80 and 443\n"))


def test_without_ss_a_free_port_passes(no_ss: dict[str, str]):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: free for check_port
    result = run_shell(CHECK_PORT, str(port), env=no_ss)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_without_ss_or_proc_it_says_it_could_not_check(no_ss: dict[str, str], tmp_path: Path):
    result = run_shell(CHECK_PORT, "80", env={**no_ss, "BERTH_PROC_NET": str(tmp_path / "none")})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("       Could not check that port 80 is free (neither ss nor "
                             "/proc/net/tcp here): Berth's proxy needs it\n")


def test_without_a_known_init_it_says_the_agent_will_not_come_back(tmp_path: Path):
    fake_command(tmp_path / "bin", "setsid", f'echo "$@" >"{tmp_path}/started"')
    fake_command(tmp_path / "bin", "ip", "exit 1")
    supervisor = tmp_path / "berth-supervise"
    script = functions("say", "note", "die", "read_settings", "supervisor_script",
                       "supervisor_service",
                       "public_address", "next_steps") + f"""
has_systemd() {{ false; }}
has_sysv() {{ false; }}
supervised_agent() {{ return 1; }}
stop_supervisor() {{ :; }}
read_settings
SUPERVISOR={supervisor}
supervisor_service
next_steps
"""
    result = run_shell(script, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("-----> Starting the agent (a respawning loop, logs in "
                        "/var/log/berth/agent.log)")
    assert (f"       No systemd and no SysV init here: the agent will NOT come back after a "
            f"reboot. After each boot, start it as root with: setsid {supervisor} "
            ">/dev/null 2>&1 &") in lines
    assert os.access(supervisor, os.X_OK)
    assert "while true; do" in supervisor.read_text()
    deadline = time.monotonic() + 10
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "started").read_text() == f"{supervisor}\n"
