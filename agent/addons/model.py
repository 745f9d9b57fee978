"""What an add-on is: its kind, names, container, and the URL the app is given (pure).

An add-on belongs to one app and has a name unique within it. The first add-on of a kind
sets the kind's usual variable (`DATABASE_URL`, `REDIS_URL`); `--as NAME` names it and
sets `NAME_URL` (Heroku's `--as`); a second one of a kind without `--as` is named
`KIND-2` (`POSTGRES_2_URL`). Its container is reached by its container name on the
app's own network, never published.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from agent.errors import BerthError, echo
from agent.names import APP_NAME_MAX, APP_RULE, app_shaped

KINDS = ("postgres", "redis")
STANDARD_VARIABLES = {"postgres": "DATABASE_URL", "redis": "REDIS_URL"}
PORTS = {"postgres": 5432, "redis": 6379}
# Databases every Postgres cluster has: an add-on of an app so named gets `app_` before it.
RESERVED_DATABASES = frozenset({"template0", "template1"})
_VERSION = re.compile(r"[0-9][0-9A-Za-z.-]{0,19}")
# `--as` may use capitals and underscores: lowered and dashed, it is the add-on's name.
_AS = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{APP_NAME_MAX - 1}}}")
# Inside the container: where each kind keeps its data, and Postgres's certificate.
DATA_PATHS = {"postgres": "/var/lib/postgresql/data", "redis": "/data"}


class InvalidAddon(BerthError):
    pass


class AddonNotFound(BerthError):
    status = 404

    def __init__(self, app: str, name: str) -> None:
        super().__init__(f"{app} has no add-on named {echo(name)} (berth addons {app})")
        self.app = app
        self.name = name


@dataclass(frozen=True)
class Addon:
    """One add-on as stored: everything needed to (re)create its container."""

    app: str
    name: str
    kind: str
    version: str
    image: str
    variable: str  # the config var holding its URL
    password: str
    created_at: float

    @property
    def container(self) -> str:
        """Its container's name, which is also its host name on the app's network."""
        return f"berth-addon-{self.app}-{self.name}"

    @property
    def user(self) -> str:
        """The Postgres role and database: the app's name as an SQL identifier, prefixed
        with `app_` when Postgres keeps that name for itself (an app named template1)."""
        name = self.app.replace("-", "_")
        return f"app_{name}" if name in RESERVED_DATABASES else name

    @property
    def url(self) -> str:
        secret = quote(self.password, safe="")
        if self.kind == "postgres":
            return (f"postgres://{self.user}:{secret}@{self.container}:{PORTS['postgres']}"
                    f"/{self.user}")
        return f"redis://default:{secret}@{self.container}:{PORTS['redis']}"

    def public(self) -> dict[str, object]:
        """What may be shown: never the password nor the URL that holds it."""
        return {"app": self.app, "name": self.name, "kind": self.kind,
                "version": self.version, "image": self.image, "variable": self.variable,
                "container": self.container, "user": self.user,
                "created_at": self.created_at}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidAddon(f"unknown add-on kind {echo(kind)}: choose {' or '.join(KINDS)}")
    return kind


def check_name(name: str) -> str:
    if not app_shaped(name):
        raise InvalidAddon(f"invalid add-on name {echo(name)}: {APP_RULE}")
    return name


HOST_NAME_MAX = 63  # one DNS label: the container's name is its host name on the network


def check_host_name(app: str, name: str) -> str:
    """The container (and host) name an add-on `name` of `app` gets, refused if it would not
    be one DNS label (a 30-character app and a 30-character add-on name come to 73)."""
    host = f"berth-addon-{app}-{name}"  # as Addon.container names it
    if len(host) > HOST_NAME_MAX:
        raise InvalidAddon(f"add-on name {echo(name)} is too long for {app}: its host name "
                           f"{host} would be {len(host)} characters, at most {HOST_NAME_MAX} "
                           "(choose a shorter --as)")
    return host


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise InvalidAddon(f"invalid version {echo(version)}: e.g. 16 or 7.2")
    return version


def new_password() -> str:
    """256 bits, URL-safe, so the URL needs no escaping."""
    return secrets.token_urlsafe(32)


def choose_names(kind: str, taken: dict[str, str], alias: str | None) -> tuple[str, str]:
    """(name, variable) for a new add-on of `kind`, given the app's add-ons as
    name -> variable. `alias` is `--as NAME`."""
    if alias is not None:
        if not _AS.fullmatch(alias):
            raise InvalidAddon(f"invalid --as {echo(alias)}: letters, digits, _ and -, "
                               f"starting with a letter, at most {APP_NAME_MAX}")
        name = check_name(alias.lower().replace("_", "-"))
        variable = alias.upper().replace("-", "_") + "_URL"
    elif STANDARD_VARIABLES[kind] not in taken.values() and kind not in taken:
        name, variable = kind, STANDARD_VARIABLES[kind]
    else:
        number = 2
        while f"{kind}-{number}" in taken:
            number += 1
        name = f"{kind}-{number}"
        variable = f"{kind.upper()}_{number}_URL"
    if name in taken:
        raise InvalidAddon(f"the app already has an add-on named {name} (choose another --as)")
    if variable in taken.values():
        raise InvalidAddon(f"another add-on already sets {variable} (choose another --as)")
    return name, variable
