"""`ssh -t` through real OpenSSH and a real agent: Berth's keys get a terminal, and
nothing else. The add-on clients answer over it against real postgres and redis
add-ons; port forwarding stays refused; no shell is reachable; a push with a terminal
forced on works; a key limited to some apps gets no terminal session on others."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ADDONS, running_stack
from tests.e2e.harness import AgentProcess, GitUser, free_port

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

APP, OTHER = "e2e-tty", "e2e-tty-other"


@pytest.fixture(scope="module")
def stack(e2e_root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    with running_stack(e2e_root, extra=ADDONS) as started:
        yield started
        for app in (APP, OTHER):  # add-ons first, or the app's network stays in use
            started[0].cli("apps:destroy", app, "--confirm", app)


def ssh_argv(user: GitUser, *options: str, log_level: str = "ERROR") -> list[str]:
    return ["ssh", "-p", str(user.ssh_port), "-i", str(user.key), "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", f"LogLevel={log_level}", *options, "berth@127.0.0.1"]


# A step of a session: once one of these shows (after the last step's), type this.
Step = tuple[tuple[bytes, ...], bytes]


def in_terminal(argv: list[str], steps: list[Step], timeout: float = 60) -> bytes:
    """Run `argv` (ssh -tt ...) on a new local pty and play `steps`; what the terminal
    showed, once the steps are done or the session ended."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    seen, mark, index, asked = b"", 0, 0, 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and index < len(steps):
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    piece = os.read(fd, 65536)
                except OSError:
                    break  # the session ended
                if not piece:
                    break
                seen += piece
                for _ in range(piece.count(b"\x1b[6n")):  # a line editor asks where the
                    asked += 1                              # cursor is, then the width
                    os.write(fd, b"\x1b[1;1R" if asked % 2 else b"\x1b[1;80R")
            shows, typed = steps[index]
            if any(text in seen[mark:] for text in shows):
                mark = len(seen)
                os.write(fd, typed)
                index += 1
    finally:
        os.kill(pid, 9)  # the client, if it has not ended yet
        os.waitpid(pid, 0)
        os.close(fd)
    return seen


def test_psql_and_redis_cli_answer_over_ssh_t(stack) -> None:
    agent, developer = stack
    agent.ok("apps:create", APP)
    agent.ok("addons:create", APP, "postgres")
    agent.ok("addons:create", APP, "redis")
    seen = in_terminal([*ssh_argv(developer, "-tt"), f"addons:psql {APP}"], [
        ((b"=>", b"=#"), b"\\pset pager off\nSELECT 40 + 2 AS answer;\n"),
        ((b"(1 row)",), b"\\q\n")])
    assert b" answer \r\n--------\r\n     42\r\n(1 row)" in seen, seen
    seen = in_terminal([*ssh_argv(developer, "-tt"), f"addons:redis-cli {APP}"], [
        ((b"6379> ",), b"SET greeting hello-over-ssh\r"),  # one line at a time: the line
        ((b"OK",), b"GET greeting\r"),                     # editor drops what is typed ahead
        ((b'"hello-over-ssh"',), b"quit\r")])
    assert b'"hello-over-ssh"' in seen, seen
    url = agent.ok("config:get", APP, "REDIS_URL").strip()
    assert url.split(":")[2].split("@")[0].encode() not in seen  # the password never shows
    # Without a terminal: one line saying how to get one.
    plain = developer.ssh(f"addons:psql {APP}")
    error = plain.stderr.decode()
    assert plain.returncode == 1 and "ssh -t" in error and error.count("\n") == 1, error


def test_no_forwarding_and_no_shell_with_a_terminal(stack) -> None:
    agent, developer = stack
    local = free_port()
    forward = subprocess.Popen(
        [*ssh_argv(developer, "-N", "-L", f"{local}:127.0.0.1:{agent.http_port}",
                   log_level="INFO")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", local), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and forward.poll() is None, forward.stderr
                time.sleep(0.1)
        with conn:
            conn.settimeout(20)
            try:  # the channel is refused: closed or reset, nothing comes through
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = conn.recv(1024)
            except ConnectionResetError:
                answer = b""
            assert answer == b""
    finally:
        forward.kill()
        _, stderr = forward.communicate(timeout=20)
    assert b"administratively prohibited" in stderr, stderr
    stdio = subprocess.run([*ssh_argv(developer, "-W", f"127.0.0.1:{agent.http_port}",
                                      log_level="INFO")],
                           input=b"", capture_output=True, timeout=60, check=False)
    assert stdio.returncode != 0 and b"administratively prohibited" in stdio.stderr
    for command in ("", "/bin/sh -c id", "bash", "exec sh"):
        asked = in_terminal([*ssh_argv(developer, "-tt"), *([command] if command else [])],
                            [((b"$ ", b"# ", b"> "), b"id\r"), ((b"uid=",), b"")], timeout=20)
        assert b"uid=" not in asked, (command, asked)
        assert b"Berth offers no shell" in asked or b"invalid choice" in asked, asked


def test_a_push_and_a_clone_work_with_a_terminal_forced_on(stack, e2e_root) -> None:
    _, developer = stack
    source = e2e_root / "tty-src"
    source.mkdir()
    (source / "README").write_bytes(bytes(range(256)) * 64 + b"\r\n\n\x03\x04")
    tree = developer.repo(source, OTHER)
    forced = {**developer.env, "GIT_SSH_COMMAND": developer.env["GIT_SSH_COMMAND"] + " -tt"}
    for attempt in ("first", "again"):  # a new app (berth ssh-command), then the sh path
        tree.commit(attempt)
        pushed = subprocess.run(["git", "-C", str(tree.path), "push", "deploy", "HEAD:side"],
                                env=forced, capture_output=True, text=True, timeout=60,
                                check=False)
        assert pushed.returncode == 0, pushed.stderr
    clone = e2e_root / "tty-clone"
    cloned = subprocess.run(["git", "clone", "-q", "-b", "side", f"berth@127.0.0.1:{OTHER}",
                             str(clone)], env=forced, capture_output=True, text=True,
                            timeout=120, check=False)
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "README").read_bytes() == (source / "README").read_bytes()
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout
    assert head.strip() == tree.head()


def test_an_app_key_gets_no_terminal_session_on_other_apps(stack, e2e_root) -> None:
    agent, developer = stack
    (e2e_root / "tty-ci").mkdir(exist_ok=True)
    ci = GitUser(e2e_root / "tty-ci", developer.ssh_port)
    agent.ok("keys:add", "tty-ci", "--apps", OTHER, stdin=ci.public_key)
    for command in (f"run {APP} id", f"addons:psql {APP}"):
        seen = in_terminal([*ssh_argv(ci, "-tt"), command], [((b"\n",), b"")], timeout=30)
        assert b"uid=" not in seen and f"may not act on app {APP}".encode() in seen, seen


def psql_sessions(container: str) -> int:
    """The add-on's psql sessions for the app's database, but the one asking."""
    user = APP.replace("-", "_")
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'psql'"
           f" AND datname = '{user}' AND pid <> pg_backend_pid()")
    done = subprocess.run(["docker", "exec", "-u", "postgres", container, "psql", "-U", user,
                           "-d", user, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_hanging_up_ends_the_client_in_the_addon(stack) -> None:
    _, developer = stack
    container = f"berth-addon-{APP}-postgres"
    in_terminal([*ssh_argv(developer, "-tt"), f"addons:psql {APP}"],
                [((b"=>", b"=#"), b"")])  # at the prompt: then the client is killed
    deadline = time.monotonic() + 30
    while True:
        top = subprocess.run(["docker", "top", container], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        client_gone = " psql " not in top and not top.rstrip().endswith("psql")
        if client_gone and (sessions := psql_sessions(container)) == 0:
            break  # neither the client nor its session in postgres is left
        assert time.monotonic() < deadline, (top, sessions if client_gone else None)
        time.sleep(0.2)


def test_keys_an_older_berth_wrote_get_a_terminal_once_the_agent_restarts(stack) -> None:
    """An upgrade: authorized_keys still has the no-pty lines of the Berth before; the
    new agent rewrites them at its start."""
    agent, developer = stack
    keys_file = agent.root / "ssh" / "authorized_keys"
    current = keys_file.read_text()
    assert "restrict,pty,no-port-forwarding," in current
    keys_file.write_text(current.replace("restrict,pty,", "restrict,").replace(
        "no-X11-forwarding,", "no-X11-forwarding,no-pty,"))
    psql = [*ssh_argv(developer, "-tt", log_level="INFO"), f"addons:psql {APP}"]
    refused = subprocess.run(psql, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=60, check=False)
    assert refused.returncode != 0, refused  # -tt gives up without the terminal it forces
    assert b"PTY allocation request failed" in refused.stderr, refused.stderr
    agent.restart_in_place()
    assert "no-pty" not in keys_file.read_text()
    seen = in_terminal(psql, [((b"=>", b"=#"), b"SELECT 6 * 7 AS again;\n"),
                              ((b"(1 row)",), b"\\q\n")])
    assert b" again \r\n-------\r\n    42\r\n(1 row)" in seen, seen
