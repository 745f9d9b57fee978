"""Which SSH keys install.sh lets push: the flag or environment variable's key, the key
file's keys, else root's and the sudo user's authorized_keys, each exactly; and with no
key anywhere, the exact `keys:add` command to run. The installer's own functions run
against a stand-in `berth` CLI keeping keys in a file; fingerprints come from the real
ssh-keygen, homes from a stand-in `getent`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.install.harness import fake_command, functions, run_shell

STAND_IN_CLI = r"""
berth() {  # the CLI's keys --json and keys:add NAME, over "NAME FINGERPRINT KEY" lines
    touch "$KEYS"
    case $1 in
        keys) printf '['; sep=""
              while read -r name print _; do
                  printf '%s{"name": "%s", "fingerprint": "%s"}' "$sep" "$name" "$print"; sep=", "
              done <"$KEYS"; echo ']' ;;
        keys:add) read -r line
                  print=$(printf '%s\n' "$line" | ssh-keygen -lf - | awk '{print $2}')
                  echo "$2 $print $line" >>"$KEYS" ;;
    esac
}
"""
SCRIPT = (functions("usage", "say", "note", "die", "need_value", "read_settings", "parse_args",
                    "public_keys", "candidate_keys", "authorized_keys", "fingerprint", "add_keys",
                    "public_address", "next_steps")
          + STAND_IN_CLI + 'read_settings; parse_args "$@"; add_keys; next_steps')
ADDRESS = "203.0.113.7"


def new_key(directory: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop",
                    "-f", str(directory / name)], check=True, timeout=30)
    return (directory / f"{name}.pub").read_text().strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: new_key(directory, name) for name in ("flag", "root", "alice", "other")}


class Server:
    """Root's and alice's homes, a stand-in getent and ip, and the keys the CLI holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.homes = {user: root / "home" / user for user in ("root", "alice")}
        lines = "\n".join(f"{user}:x:{uid}:{uid}::{self.homes[user]}:/bin/sh"
                          for uid, user in enumerate(self.homes))
        fake_command(root / "bin", "getent", f"printf '%s\\n' '{lines}' | grep \"^$2:\"")
        fake_command(root / "bin", "ip", f'[ "$1" = -4 ] && echo "1.1.1.1 via 192.0.2.1 dev '
                     f'eth0 src {ADDRESS} uid 0"')

    def authorize(self, user: str, text: str) -> None:
        (self.homes[user] / ".ssh").mkdir(parents=True, exist_ok=True)
        (self.homes[user] / ".ssh" / "authorized_keys").write_text(text)

    def install(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_shell(SCRIPT, *args, env={"PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
                                             "KEYS": str(self.root / "keys"), **env})

    def added(self) -> list[str]:
        """The keys keys:add was given, type and base64 (comments are dropped)."""
        path = self.root / "keys"
        return sorted(" ".join(line.split()[2:4]) for line in
                      (path.read_text().splitlines() if path.exists() else []))


@pytest.fixture
def server(tmp_path: Path, keys: dict[str, str]) -> Server:
    server = Server(tmp_path)
    server.authorize("root", f'no-port-forwarding,command="echo no" {keys["root"]}\n')
    server.authorize("alice", f"# alice's\n{keys['alice']}\n")
    return server


def bare(*keys: str) -> list[str]:
    return sorted(" ".join(key.split()[:2]) for key in keys)


def test_ssh_key_adds_that_key_only(server: Server, keys: dict[str, str]):
    by_flag = server.install("--ssh-key", keys["flag"], SUDO_USER="alice")
    assert by_flag.returncode == 0, by_flag.stderr
    assert server.added() == bare(keys["flag"])
    assert "-----> Key admin (SHA256:" in by_flag.stdout and "No SSH key" not in by_flag.stdout
    (server.root / "keys").unlink()
    by_env = server.install(BERTH_SSH_KEY=keys["flag"], SUDO_USER="alice")
    assert by_env.returncode == 0, by_env.stderr
    assert server.added() == bare(keys["flag"])


def test_ssh_key_file_adds_its_keys_only(server: Server, keys: dict[str, str]):
    key_file = server.root / "team.pub"
    key_file.write_text(f"# the team\n\nrestrict {keys['flag']}\n{keys['other']}\n")
    by_flag = server.install("--ssh-key-file", str(key_file), SUDO_USER="alice")
    assert by_flag.returncode == 0, by_flag.stderr
    assert server.added() == bare(keys["flag"], keys["other"])
    assert "Key admin (" in by_flag.stdout and "Key admin-2 (" in by_flag.stdout
    (server.root / "keys").unlink()
    by_env = server.install(BERTH_SSH_KEY_FILE=str(key_file), SUDO_USER="alice")
    assert by_env.returncode == 0, by_env.stderr
    assert server.added() == bare(keys["flag"], keys["other"])


def test_an_unreadable_key_file_is_one_line(server: Server):
    result = server.install("--ssh-key-file", str(server.root / "missing.pub"))
    assert (result.returncode, result.stderr) == (
        1, f"install.sh: --ssh-key-file {server.root}/missing.pub: cannot read it\n")
    assert server.added() == []


def test_root_and_the_sudo_users_keys_are_found(server: Server, keys: dict[str, str]):
    result = server.install(SUDO_USER="alice")
    assert result.returncode == 0, result.stderr
    assert server.added() == bare(keys["root"], keys["alice"])
    again = server.install(SUDO_USER="alice")  # an upgrade: the same keys, nothing new
    assert again.returncode == 0 and "may push" not in again.stdout
    assert server.added() == bare(keys["root"], keys["alice"])


def test_without_sudo_only_roots_keys_are_found(server: Server, keys: dict[str, str]):
    result = server.install()
    assert result.returncode == 0, result.stderr
    assert server.added() == bare(keys["root"])


def test_no_key_anywhere_prints_the_keys_add_command(server: Server):
    for user in ("root", "alice"):
        (server.homes[user] / ".ssh" / "authorized_keys").unlink()
    result = server.install("--domain", "apps.example.com", SUDO_USER="alice")
    assert result.returncode == 0, result.stderr
    assert server.added() == []
    lines = result.stdout.splitlines()
    at = lines.index("       No SSH key may push yet. Add yours (from your machine):")
    assert lines[at + 1] == (f"         ssh root@{ADDRESS} berth keys:add laptop "
                             "< ~/.ssh/id_ed25519.pub")


def test_berth_no_keys_adds_none(server: Server, keys: dict[str, str]):
    result = server.install("--ssh-key", keys["flag"], BERTH_NO_KEYS="1", SUDO_USER="alice")
    assert result.returncode == 0, result.stderr
    assert server.added() == [] and "may push" not in result.stdout
