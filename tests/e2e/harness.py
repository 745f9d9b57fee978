"""Real parts for end-to-end tests: a Berth agent process, a second sshd, a git user.

Everything runs for real: the agent is `python -m agent agent` with its own berth.toml
(high ports, temp dirs), sshd is OpenSSH on a free loopback port that logs in the
`berth` system user with the authorized_keys file the agent writes, and pushes are real
`git push` over that sshd. Files the berth user must read live in a world-traversable
temp root (pytest's own temp dirs are private to root).
"""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def world_readable_tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def copy_package(root: Path) -> Path:
    """A copy of the package (and hooks) the berth user can import, whatever the
    checkout's permissions."""
    target = root / "lib"
    shutil.copytree(REPO / "agent", target / "agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "hooks", target / "hooks")
    shutil.copytree(REPO / "buildpacks", target / "buildpacks")
    for dirpath, dirnames, filenames in os.walk(target):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
    return target


# Run as `python -c SOCKET_ACTIVATION FD,FD python-args...`: puts the descriptors at 3, 4
# and sets the variables for its own pid, then execs Python (the pid stays).
SOCKET_ACTIVATION = """
import fcntl, os, sys
fds = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1].split(",")]
for offset, fd in enumerate(fds):
    os.dup2(fd, 3 + offset)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)),
                  LISTEN_FDNAMES="http:https")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def listening_sockets(*ports: int) -> list[socket.socket]:
    """Sockets listening on 127.0.0.1 at `ports`, as systemd's berth.socket holds them."""
    return [socket.create_server(("127.0.0.1", port), backlog=4096) for port in ports]


@dataclass
class AgentProcess:
    root: Path
    config_path: Path
    http_port: int
    https_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    python: str = sys.executable  # the interpreter Berth is installed for
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "agent.log"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "control.sock"

    def start(self, timeout: float = 60, *, sockets: Sequence[socket.socket] = ()) -> None:
        """Start the agent; with `sockets` (HTTP, HTTPS), pass them to it as systemd's
        socket activation does (descriptors 3 and 4, LISTEN_PID, LISTEN_FDS)."""
        argv = [self.python, "-m", "agent", "agent", "--log-level", "debug"]
        if sockets:
            argv = [self.python, "-c", SOCKET_ACTIVATION,
                    ",".join(str(s.fileno()) for s in sockets), *argv[1:]]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=log, cwd=self.root,
            pass_fds=[s.fileno() for s in sockets],
        )
        log.close()
        self._wait_until_ready(timeout, lambda: True)

    def restart_in_place(self, timeout: float = 90) -> None:
        """SIGHUP: the agent stops and execs itself, keeping its listening sockets. Returns
        once the new one answers (the same process)."""
        assert self.process is not None
        starts = self.log_path.read_text(errors="replace").count("agent ready")
        self.process.send_signal(signal.SIGHUP)
        self._wait_until_ready(timeout, lambda: self.log_path.read_text(
            errors="replace").count("agent ready") > starts)

    def _wait_until_ready(self, timeout: float, started: Callable[[], bool]) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited at start:\n{self.log_tail()}")
            if (started() and self.socket.exists()
                    and self.cli("apps", "--json").returncode == 0):
                return
            time.sleep(0.2)
        raise RuntimeError(f"agent did not come up:\n{self.log_tail()}")

    def stop(self, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """kill -9: no cleanup at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def command(self) -> list[str]:
        return [self.python, "-m", "agent"]

    def cli(self, *args: str, stdin: bytes | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command(), *args], env=self.env, input=stdin.decode() if stdin else None,
            capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False,
        )

    def ok(self, *args: str, stdin: bytes | None = None, timeout: float = 600) -> str:
        result = self.cli(*args, stdin=stdin, timeout=timeout)
        assert result.returncode == 0, (
            f"berth {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
            f"{result.stderr}\n--- agent log:\n{self.log_tail()}")
        return result.stdout

    def get(self, host: str, path: str = "/", *, timeout: float = 10,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return http_get(self.http_port, host, path, timeout=timeout, headers=headers)


def http_get(port: int, host: str, path: str = "/", *, timeout: float = 10,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class SshServer:
    root: Path
    authorized_keys: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        host_key = self.root / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                       check=True)
        Path("/run/sshd").mkdir(exist_ok=True)
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "AllowUsers berth",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel VERBOSE",
            "",
        ]))
        log = (self.root / "sshd.log").open("ab")
        self.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not start: " + (self.root / "sshd.log").read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class GitUser:
    """A developer with a key pair, pushing over the test sshd."""

    root: Path
    ssh_port: int
    key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.root / "id_ed25519"
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev@laptop",
                            "-f", str(self.key)], check=True)

    @property
    def public_key(self) -> bytes:
        return self.key.with_suffix(".pub").read_bytes()

    @property
    def env(self) -> dict[str, str]:
        ssh = (f"ssh -p {self.ssh_port} -i {self.key} -o IdentitiesOnly=yes "
               "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        return {**os.environ, "GIT_SSH_COMMAND": ssh, "GIT_AUTHOR_NAME": "Dev",
                "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
                "GIT_COMMITTER_EMAIL": "dev@example.com"}

    def ssh(self, command: str, *, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh", "-p", str(self.ssh_port), "-i", str(self.key), "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "berth@127.0.0.1", command],
            input=stdin, capture_output=True, timeout=timeout, check=False,
        )

    def repo(self, source: Path, name: str) -> "WorkTree":
        work = self.root / "work" / name
        shutil.copytree(source, work)
        tree = WorkTree(work, self)
        tree.git("init", "-q", "-b", "main")
        tree.git("remote", "add", "deploy", f"berth@127.0.0.1:{name}")
        tree.commit("initial")
        return tree


@dataclass
class WorkTree:
    path: Path
    user: GitUser

    def git(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["git", "-C", str(self.path), *args], env=self.user.env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def write(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def push(self, branch: str = "main", *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.git("push", "deploy", f"HEAD:{branch}", check=check)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()


class Load:
    """Keep-alive HTTP clients hammering the proxy in threads, counting failures."""

    def __init__(self, port: int, host: str, *, clients: int = 4, path: str = "/",
                 keep_alive: bool = True, timeout: float = 30) -> None:
        self.port, self.host, self.path = port, host, path
        self.keep_alive, self.timeout = keep_alive, timeout
        self.ok = 0
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _record(self, status: int | None, error: BaseException | None) -> None:
        """One answer (`status`) or failure to get one (`error`); called under the lock."""
        if status is None:
            self.failures.append(repr(error))
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status >= 500:
            self.failures.append(f"status {status}")
        else:
            self.ok += 1

    def _run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                            timeout=self.timeout)
                connection.request("GET", self.path, headers={"Host": self.host})
                response = connection.getresponse()
                response.read()
                with self._lock:
                    self._record(response.status, None)
                if response.will_close or not self.keep_alive:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self._record(None, exc)
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(0.005)
        if connection is not None:
            connection.close()


def shell_quote_env(env: dict[str, str]) -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
