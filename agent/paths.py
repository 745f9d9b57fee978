"""Where Berth keeps its state, and the light config read the CLI and hooks need.

The CLI, the SSH forced command and the git hook only need to find the control socket;
`load_paths` reads just the `[paths]` table, so they start without importing the
proxy, the builder or docker-py (the full file is validated by the agent).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError
from agent.settings import load_section

DEFAULT_CONFIG_PATH = Path("/etc/berth/berth.toml")
# Modes of what the agent makes (README, Security). data_dir: others may only traverse
# it (the berth user reaches repos/ and ssh-command); logs: root and the adm-like group.
DATA_DIR_MODE = 0o711
LOG_DIR_MODE = 0o750
LOG_FILE_MODE = 0o640
AGENT_UMASK = 0o027
CONFIG_ENV = "BERTH_CONFIG"


@dataclass(frozen=True)
class PathSettings:
    """Where Berth keeps its state (`[paths]`)."""

    data_dir: Path = Path("/var/lib/berth")
    # Directory of the control socket; 0750 root:<ssh.user>, so only root and the berth
    # user can open the socket whatever mode the socket file itself has.
    run_dir: Path = Path("/run/berth")
    # The proxy's access log (access.log, rotated by size).
    log_dir: Path = Path("/var/log/berth")

    @property
    def database(self) -> Path:
        return self.data_dir / "berth.db"

    @property
    def repos(self) -> Path:
        return self.data_dir / "repos"

    def repo(self, app: str) -> Path:
        """The app's bare git repository."""
        return self.repos / f"{app}.git"

    @property
    def forced_command(self) -> Path:
        """The SSH forced command's fast path (agent.forcedcommand)."""
        return self.data_dir / "ssh-command"

    @property
    def builds(self) -> Path:
        return self.data_dir / "builds"

    @property
    def build_steps(self) -> Path:
        """Failed and killed builds' records of their step images (agent.build.steplog)."""
        return self.data_dir / "build-steps"

    @property
    def certs(self) -> Path:
        return self.data_dir / "certs"

    @property
    def storage(self) -> Path:
        """Persistent storage of apps (agent.storage), root's only."""
        return self.data_dir / "storage"

    @property
    def access_log(self) -> Path:
        return self.log_dir / "access.log"

    @property
    def app_logs(self) -> Path:
        """Runtime logs of removed instances, one file per app (agent.deploy.loghistory)."""
        return self.log_dir / "apps"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"


def prepare_state_dirs(paths: PathSettings) -> None:
    """Create data_dir and log_dir if needed and give them their modes (an older
    install's world-readable ones are tightened)."""
    for directory, mode in ((paths.data_dir, DATA_DIR_MODE), (paths.log_dir, LOG_DIR_MODE)):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, mode)


def open_log(path: Path) -> int:
    """A descriptor of the log file `path` to append to, LOG_FILE_MODE (also when it
    existed with another mode); a symbolic link there is refused (ELOOP)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 LOG_FILE_MODE)
    os.fchmod(fd, LOG_FILE_MODE)
    return fd


def config_path(environ: Mapping[str, str]) -> Path:
    """The configuration file named by the environment, or the default."""
    named = environ.get(CONFIG_ENV, "")
    return Path(named) if named else DEFAULT_CONFIG_PATH


def read_toml(path: Path, *, explicit: bool) -> str | None:
    """The file's text; None when the default file is missing (all defaults)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError("", f"{path} does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from exc


def load_paths(environ: Mapping[str, str] | None = None) -> PathSettings:
    """Only the `[paths]` table of the configuration file."""
    environ = os.environ if environ is None else environ
    path = config_path(environ)
    text = read_toml(path, explicit=bool(environ.get(CONFIG_ENV)))
    if text is None:
        return PathSettings()
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: not valid TOML: {exc}") from exc
    return load_section(PathSettings, table.get("paths"), "paths")
