"""Persistent storage: which container paths of an app outlive its containers (pure).

`berth storage:mount APP /app/data` keeps /app/data in a host directory that every
instance, release phase and one-off of the app mounts, release after release (Dokku's
storage:mount, Kamal's volumes). Berth chooses the host directory (under
data_dir/storage/APP/, readable by root only), so an SSH key that may push cannot mount
arbitrary host paths into a container.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import quote

from agent.build import APP_DIR
from agent.errors import BerthError, echo

_PATH = re.compile(r"/[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*")
# Mounting over these would break the container rather than keep data.
_RESERVED = ("/bin", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys",
             "/usr")


class InvalidMountPath(BerthError):
    pass


def check_mount_path(path: str) -> str:
    """An absolute, normal container path that may hold an app's data, e.g. /app/data."""
    normal = posixpath.normpath(path) if path.startswith("/") else path
    if (not _PATH.fullmatch(path) or normal != path
            or any(part in (".", "..") for part in path.split("/"))):
        raise InvalidMountPath(
            f"invalid path {echo(path)}: give an absolute container path such as /app/data "
            "(letters, digits and . _ @ + - between slashes)")
    for reserved in _RESERVED:
        if path == reserved or path.startswith(reserved + "/"):
            raise InvalidMountPath(f"{path} is part of the container's system ({reserved})")
    if path == APP_DIR:
        raise InvalidMountPath(f"{APP_DIR} holds the app's code: mount a directory in it, "
                               f"such as {APP_DIR}/data")
    return path


def host_dir(storage_root: Path, app: str, path: str) -> Path:
    """Where `path` of `app` lives on the host: one directory per mount, named after
    the container path so a look at the disk says what is what (/app/data -> app%2Fdata)."""
    return storage_root / app / quote(path.strip("/"), safe="")


def prepare(storage_root: Path, app: str, path: str) -> Path:
    """Create the host directory of a mount. The storage root is root's only (0700);
    the directory itself is writable by any user, as the app inside its container runs
    as whichever user its image names."""
    storage_root.mkdir(parents=True, exist_ok=True)
    storage_root.chmod(0o700)
    directory = host_dir(storage_root, app, path)
    directory.mkdir(parents=True, exist_ok=True)
    directory.parent.chmod(0o755)
    directory.chmod(0o777)
    return directory
