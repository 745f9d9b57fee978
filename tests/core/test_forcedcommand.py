"""The forced command's sh fast path, run by a real /bin/sh: it execs git only where
`berth ssh-command` would exec the same thing, and hands everything else over unchanged."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent import forcedcommand

EXISTING = ("shop", "a", "my-app-2", "x" * 30)
# Repositories a careless check would let through: the fast path must never exec them.
TRAPS = ("Shop", "1shop", "x" * 31, "shop.git", "a_b", "-a", "a'b", "é", "a b", "a\nb")
# What `berth ssh-command` execs git for, spelled the one way the fast path takes.
FAST = re.compile(r"(git-receive-pack|git-upload-pack) '([a-z][a-z0-9-]{0,29})'")


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("gate")
    repos = root / "repos dir"  # a space: the path is quoted in the script
    for app in EXISTING + TRAPS:
        (repos / f"{app}.git").mkdir(parents=True)
        (repos / f"{app}.git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repos / "nohead.git").mkdir()
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for verb in ("git-receive-pack", "git-upload-pack"):
        fake = bin_dir / verb
        fake.write_text(f'#!/bin/sh\nprintf "GIT {verb} %s|%s|%s" "$#" "$1" "$BERTH_PUSHER"\n')
        fake.chmod(0o755)
    path = root / "ssh-command"
    forcedcommand.install(path, forcedcommand.script(repos, "printf 'FALLBACK %s|' "))
    return path, {"PATH": f"{bin_dir}:/usr/bin:/bin", "REPOS": str(repos)}


def run(gate: tuple[Path, dict[str, str]], original: str | None, *args: str) -> str:
    path, env = gate
    env = {"PATH": env["PATH"]}
    if original is not None:
        env["SSH_ORIGINAL_COMMAND"] = original
    argv = args or ("ssh-command", "dev")
    return subprocess.run(["/bin/sh", str(path), *argv], env=env, capture_output=True,
                          text=True, check=True).stdout


def test_a_push_to_an_existing_app_execs_git_with_the_pusher(gate) -> None:
    repos = gate[1]["REPOS"]
    assert run(gate, "git-receive-pack 'shop'") == f"GIT git-receive-pack 1|{repos}/shop.git|dev"
    assert run(gate, "git-upload-pack 'my-app-2'") == (
        f"GIT git-upload-pack 1|{repos}/my-app-2.git|dev")


@pytest.mark.parametrize("original", [
    *(f"git-receive-pack '{trap}'" for trap in TRAPS),
    "git-receive-pack 'new-app'",  # first push: the agent creates it
    "git-receive-pack 'nohead'",  # a directory that is not a repository
    "git-receive-pack 'shop.git'", "git-receive-pack '/shop'", "git-receive-pack '~/shop'",
    "git-receive-pack shop", "git-receive-pack 'Shop'", "git-receive-pack '1shop'",
    "git-receive-pack '" + "x" * 31 + "'", "git-receive-pack 'shop' 'a'",
    "git-receive-pack 'shop'\nid", "git-receive-pack '$(id)'", "git-receive-pack '../shop'",
    " git-receive-pack 'shop'", "git-receive-pack  'shop'", "git-upload-archive 'shop'",
    "apps", "config:set shop A=1", "", "sh -c 'git-receive-pack shop'",
])
def test_everything_else_goes_to_berth_unchanged(gate, original: str) -> None:
    assert run(gate, original) == "FALLBACK ssh-command|FALLBACK dev|"


def test_no_command_and_other_arguments_go_to_berth(gate) -> None:
    assert run(gate, None) == "FALLBACK ssh-command|FALLBACK dev|"
    assert run(gate, "git-receive-pack 'shop'", "ssh-command") == "FALLBACK ssh-command|"
    assert run(gate, "git-receive-pack 'shop'", "hook", "dev") == "FALLBACK hook|FALLBACK dev|"


NAMES = st.one_of(st.sampled_from([*EXISTING, *TRAPS, "new", "nohead", ""]),
                  st.text(alphabet="abcz09-_.'\"/ \n\\$`*?[]!~é", max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["git-receive-pack", "git-upload-pack", "git-upload-archive", "apps"]),
       st.sampled_from([" '{}'", " {}", "  '{}'", " '{}' ", " \"{}\"", "'{}'"]), NAMES)
@example("git-receive-pack", " '{}'", "shop")
def test_the_fast_path_is_taken_exactly_where_berth_would_exec_git(
    gate, verb: str, shape: str, name: str
) -> None:
    original = verb + shape.format(name)
    fast = FAST.fullmatch(original)
    output = run(gate, original)
    if fast and fast.group(2) in EXISTING:
        assert output == f"GIT {verb} 1|{gate[1]['REPOS']}/{name}.git|dev"
    else:
        assert output == "FALLBACK ssh-command|FALLBACK dev|"


def test_install_writes_an_executable_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ssh-command"
    text = forcedcommand.script(tmp_path / "repos", "/usr/bin/berth")
    forcedcommand.install(path, text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755 and path.read_text() == text
    first = path.stat().st_ino
    forcedcommand.install(path, text)
    assert path.stat().st_ino == first  # unchanged: not rewritten
    forcedcommand.install(path, text + "# changed\n")
    assert path.read_text().endswith("# changed\n")
    path.chmod(0o700)  # the berth user could not run it: put right
    forcedcommand.install(path, text + "# changed\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert [p.name for p in path.parent.iterdir()] == ["ssh-command"]


def test_under_a_terminal_git_gets_it_raw(tmp_path: Path) -> None:
    """`ssh -tt` (or RequestTTY force) gives git a terminal: echo or newline translation
    would corrupt the pack, so it must be raw before git runs."""
    import os
    import pty

    repos = tmp_path / "repos"
    (repos / "shop.git").mkdir(parents=True)
    (repos / "shop.git" / "HEAD").write_text("ref: refs/heads/main\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git-receive-pack").write_text("#!/bin/sh\nstty -a\n")
    (bin_dir / "git-receive-pack").chmod(0o755)
    script = tmp_path / "ssh-command"
    forcedcommand.install(script, forcedcommand.script(repos, "false"))
    main, terminal = pty.openpty()
    try:
        subprocess.run(["/bin/sh", str(script), "ssh-command", "dev"], stdin=terminal,
                       stdout=terminal, stderr=terminal, timeout=30, check=True,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin",
                            "SSH_ORIGINAL_COMMAND": "git-receive-pack 'shop'"})
        said = os.read(main, 65536).decode()
    finally:
        os.close(main)
        os.close(terminal)
    for setting in ("-echo", "-icanon", "-opost", "-isig", "-icrnl"):
        assert f" {setting}" in f" {said}".replace("\n", " "), said
