"""install.sh's command line and its pure parts, without installing anything: flags and
their environment variables, one-line refusals, key extraction, the --sha256 check of a
source, and a shellcheck pass (of .ci/release too)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.install.harness import REPO, SCRIPT, functions, run_shell

RELEASE = REPO / ".ci" / "release"


def run(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["sh", str(SCRIPT), *args]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_shellcheck_passes():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (tests/run installs it)")
    result = subprocess.run(["shellcheck", "--shell=sh", str(SCRIPT), str(RELEASE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_help_lists_every_flag_with_its_variable():
    result = run("--help")
    assert result.returncode == 0
    for flag, variable in [("--domain", "BERTH_DOMAIN"), ("--email", "BERTH_EMAIL"),
                           ("--ssh-key ", "BERTH_SSH_KEY"),
                           ("--ssh-key-file", "BERTH_SSH_KEY_FILE"),
                           ("--no-firewall", "BERTH_NO_FIREWALL"), ("--source", "BERTH_SOURCE"),
                           ("--sha256", "BERTH_SHA256"),
                           ("--force", "BERTH_FORCE")]:
        line = next(line for line in result.stdout.splitlines() if flag in line)
        assert variable in line
    assert "--uninstall" in result.stdout and "--purge" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "install.sh: unknown option --bogus (see --help)\n"),
    (["--domain"], "install.sh: --domain needs a value (see --help)\n"),
    (["--domain", "Apps.Example.com"], "install.sh: --domain Apps.Example.com: not a domain name\n"),
    (["--purge"], "install.sh: --purge goes with --uninstall\n"),
])
def test_bad_arguments_are_one_line(args, message):
    result = run(*args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)


def test_not_root_is_refused_before_anything_changes():
    if subprocess.run(["id", "berth"], capture_output=True, check=False).returncode:
        pytest.skip("needs the berth user to run as (tests/run creates it)")
    result = run("--domain", "apps.example.com", user="berth")
    assert (result.returncode, result.stderr) == (1, "install.sh: run as root (sudo sh install.sh)\n")


def test_keys_are_found_in_lines_with_options():
    ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt3ZkOtt0LHlyhz4mD0Gz3hrrQmT8GEGEPYXQH0vBEp"
    text = "\n".join([
        "# a comment", "",
        f'no-port-forwarding,no-agent-forwarding,command="echo \'Please login\';sleep 10" {ed} cloud',
        f"{ed} plain@laptop",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNh me",
    ]) + "\n"
    result = subprocess.run(["sh", "-c", functions("public_keys") + "public_keys"], input=text,
                            capture_output=True, text=True, check=False)
    assert result.stdout.splitlines() == [f"{ed} cloud", f"{ed} plain@laptop",
                                          "ecdsa-sha2-nistp256 AAAAE2VjZHNh me"]


def test_a_taken_port_names_its_holder(tmp_path):
    fake_ss = tmp_path / "ss"
    fake_ss.write_text("#!/bin/sh\necho 'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* "
                       "users:((\"nginx\",pid=4242,fd=6),(\"nginx\",pid=4243,fd=6))'\n")
    fake_ss.chmod(0o755)
    script = functions("die", "note", "has_systemd", "check_port", "port_holder") + "check_port 80"
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=False)
    assert (result.returncode, result.stderr) == (
        1, "install.sh: port 80 is taken by nginx (pid 4242): stop it first, Berth's "
           "proxy needs 80 and 443\n")


@pytest.mark.parametrize("source6, aaaa", [
    ("2001:db8:1::7", True),  # global unicast: AAAA records
    ("fd00::2", False),  # unique local: not reachable from the internet
    ("fe80::1", False),  # link-local
    ("", False),  # no IPv6 route
])
def test_next_steps_name_aaaa_records_only_for_a_global_ipv6_address(tmp_path, source6, aaaa):
    fake_ip = tmp_path / "ip"  # `ip -4|-6 route get TARGET`, as iproute2 answers it
    fake_ip.write_text(
        "#!/bin/sh\n"
        'case $1 in -4) echo "1.1.1.1 via 203.0.113.1 dev eth0 src 203.0.113.7 uid 0" ;;\n'
        f'-6) [ -z "{source6}" ] || echo "2606:4700:4700::1111 from :: via fe80::1 dev eth0 '
        f'src {source6} metric 1024 pref medium" ;; esac\n')
    fake_ip.chmod(0o755)
    script = "\n".join([
        "say() { printf -- '-----> %s\\n' \"$*\"; }", "note() { printf -- '       %s\\n' \"$*\"; }",
        functions("public_address", "global_ipv6", "next_steps"),
        "DOMAIN=apps.example.com CONFIG=/etc/berth/berth.toml next_steps"])
    result = subprocess.run(["sh", "-c", script], check=False, capture_output=True, text=True,
                            timeout=30,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "*.apps.example.com  A  203.0.113.7" in result.stdout
    records = [line.split() for line in result.stdout.splitlines() if "AAAA" in line]
    assert records == ([["*.apps.example.com", "AAAA", source6],
                        ["apps.example.com", "AAAA", source6]] if aaaa else [])


RESOLVE = functions("usage", "say", "note", "die", "need_value", "read_settings", "parse_args",
                    "resolve_source", "download", "verify_sha256") + \
    'read_settings; parse_args "$@"; resolve_source; echo "$SOURCE"'


def test_sha256_checks_the_source_file(tmp_path: Path):
    wheel = tmp_path / "berth-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel, as far as this test goes")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    env = {"PATH": "/usr/bin:/bin"}
    by_flag = run_shell(RESOLVE, "--source", str(wheel), "--sha256", digest, env=env)
    assert (by_flag.returncode, by_flag.stdout, by_flag.stderr) == (0, f"{wheel}\n", "")
    by_env = run_shell(RESOLVE, env={**env, "BERTH_SOURCE": f"file://{wheel}",
                                     "BERTH_SHA256": digest})
    assert (by_env.returncode, by_env.stdout) == (0, f"{wheel}\n")
    other = "0" * 64
    refused = run_shell(RESOLVE, "--source", str(wheel), "--sha256", other, env=env)
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", (f"install.sh: {wheel} has SHA-256 {digest}, not the expected {other}: "
                "refusing to install it\n"))


def test_sha256_refusals_are_one_line(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text("")
    cases = [
        (["--sha256", "0" * 64], "--sha256 goes with --source"),
        (["--source", str(tmp_path), "--sha256", "ABC"],
         "--sha256 ABC: not a SHA-256 (64 hex digits, lowercase)"),
        (["--source", str(tmp_path), "--sha256", "0" * 63],
         f"--sha256 {'0' * 63}: not a SHA-256 (64 hex digits, lowercase)"),
        (["--source", str(tmp_path), "--sha256", "0" * 64],
         f"--sha256 checks a wheel or a tarball, not {tmp_path}"),
    ]
    for args, refusal in cases:
        result = run_shell(RESOLVE, *args, env={"PATH": "/usr/bin:/bin"})
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", f"install.sh: {refusal}\n"), args


@pytest.mark.parametrize("no_firewall", [True, False], ids=["--no-firewall", "default"])
def test_the_firewall_is_shown_then_turned_on_unless_left_off(tmp_path: Path, no_firewall):
    """By default: the summary of what will be reachable, then `firewall:apply`, then
    `enabled = true`; with --no-firewall none of that, and the config says off for good."""
    config = tmp_path / "berth.toml"
    config.write_text("[firewall]\nenabled = false  # install.sh turns this on\n")
    calls = tmp_path / "calls"
    script = "\n".join([
        functions("say", "note", "die", "enable_firewall"),
        "boot_loader() { :; }",  # the boot unit: not this test's part
        f"berth() {{ echo \"$*\" >> {calls}; [ \"$1\" != firewall ] || echo 'reachable: 22 80 443'; }}",
        f"CONFIG={config} NO_FIREWALL={int(no_firewall)} enable_firewall"])
    result = run_shell(script, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    made = calls.read_text().splitlines() if calls.exists() else []
    if no_firewall:
        assert made == []
        assert "Firewall left off (--no-firewall)" in result.stdout
        assert config.read_text() == "[firewall]\nenabled = false\n"
    else:
        assert made == ["firewall", "firewall:apply"]
        assert "The firewall, before it is turned on:" in result.stdout
        assert "       reachable: 22 80 443" in result.stdout
        assert config.read_text() == "[firewall]\nenabled = true\n"
