"""How an add-on's container is made: image, command, environment, mounts (pure).

Postgres: the official image's contract (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
PGDATA initialised when empty), with TLS on from a certificate Berth made: the key is
copied to a file the postgres user owns before the image's own entrypoint runs (Postgres
refuses a key readable by others, and the user's id differs between images). Redis: a
configuration file holding the password, so it is on no command line, and turning on
its append-only file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.addons.model import DATA_PATHS, Addon

TLS_MOUNT = "/berth-tls"
BACKUPS_MOUNT = "/berth-backups"
REDIS_CONF = "/usr/local/etc/redis/redis.conf"
_PG_TLS = "/var/lib/postgresql/tls"
_PREPARE_TLS = (
    f"mkdir -p {_PG_TLS} && cp {TLS_MOUNT}/server.crt {TLS_MOUNT}/server.key {_PG_TLS}/"
    f" && chown -R postgres:postgres {_PG_TLS} && chmod 600 {_PG_TLS}/server.key"
    ' && exec docker-entrypoint.sh "$@"'
)
LABEL_MANAGED = "berth.addon.managed"
LABEL_APP = "berth.addon.app"
LABEL_NAME = "berth.addon.name"


@dataclass(frozen=True)
class AddonLayout:
    """Where one add-on keeps its files on the host: data_dir/addons/APP/NAME/."""

    root: Path

    @classmethod
    def of(cls, addons_dir: Path, addon: Addon) -> AddonLayout:
        return cls(addons_dir / addon.app / addon.name)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def redis_conf(self) -> Path:
        return self.root / "redis.conf"


@dataclass(frozen=True)
class AddonContainer:
    """Everything the engine needs to create an add-on's container."""

    name: str
    image: str
    network: str
    entrypoint: tuple[str, ...] | None
    command: tuple[str, ...]
    env: Mapping[str, str]
    binds: tuple[tuple[str, str, str], ...]  # host path, container path, mode
    labels: Mapping[str, str]
    restart_policy: str


def redis_conf(addon: Addon, appendonly: bool = True) -> str:
    """Its password, its data directory, RDB snapshots and (unless its data is an RDB
    file not yet carried over: agent.addons.persistence) an append-only file fsynced
    every second."""
    return (f"requirepass {addon.password}\n"
            f"dir {DATA_PATHS['redis']}\n"
            f"appendonly {'yes' if appendonly else 'no'}\n"
            "appendfsync everysec\n"
            "save 3600 1 300 100 60 10000\n")


def container_for(addon: Addon, layout: AddonLayout, backups: Path, network: str,
                  installation: str, restart_policy: str) -> AddonContainer:
    labels = {LABEL_MANAGED: installation, LABEL_APP: addon.app, LABEL_NAME: addon.name}
    binds: list[tuple[str, str, str]] = [
        (str(layout.data), DATA_PATHS[addon.kind], "rw"),
        (str(backups), BACKUPS_MOUNT, "ro"),
    ]
    if addon.kind == "postgres":
        binds.append((str(layout.tls), TLS_MOUNT, "ro"))
        return AddonContainer(
            name=addon.container, image=addon.image, network=network,
            entrypoint=("sh", "-c", _PREPARE_TLS, "sh"),
            command=("postgres", "-c", "ssl=on",
                     "-c", f"ssl_cert_file={_PG_TLS}/server.crt",
                     "-c", f"ssl_key_file={_PG_TLS}/server.key"),
            env={"POSTGRES_USER": addon.user, "POSTGRES_PASSWORD": addon.password,
                 "POSTGRES_DB": addon.user, "PGDATA": DATA_PATHS["postgres"]},
            binds=tuple(binds), labels=labels, restart_policy=restart_policy)
    binds.append((str(layout.redis_conf), REDIS_CONF, "ro"))
    return AddonContainer(
        name=addon.container, image=addon.image, network=network, entrypoint=None,
        command=("redis-server", REDIS_CONF), env={}, binds=tuple(binds), labels=labels,
        restart_policy=restart_policy)


def client_command(kind: str, container: str, user: str) -> list[str]:
    """`docker exec` of the add-on's own client (`client_in_container`), attached to this
    terminal."""
    argv, exec_user = client_in_container(kind, user)
    return ["docker", "exec", "-it", *(["-u", exec_user] if exec_user else []), container,
            *argv]


def client_in_container(kind: str, user: str) -> tuple[list[str], str]:
    """The add-on's own client as run inside its container, and the user it runs as:
    psql over the local socket (trusted inside the container), or redis-cli with the
    password read inside the container from its config file, so it never passes
    through the host's command lines."""
    if kind == "postgres":
        return ["psql", "-U", user, "-d", user], "postgres"
    read_password = f"sed -n 's/^requirepass //p' {REDIS_CONF}"
    return ["sh", "-c", f'REDISCLI_AUTH="$({read_password})" exec redis-cli'], ""


def ready_probe(addon: Addon) -> tuple[tuple[str, ...], dict[str, str]]:
    """A command run inside the container that succeeds once it serves clients over
    TCP (Postgres's initialisation runs a server on its socket only)."""
    if addon.kind == "postgres":
        return ("pg_isready", "-q", "-h", "127.0.0.1", "-U", addon.user, "-d", addon.user), {}
    return ("redis-cli", "ping"), {"REDISCLI_AUTH": addon.password}
