"""Each app's own Docker network: its name, its address range, making and removing it.

An app's containers (every process type, its one-offs and release phase, and its
add-ons) join the bridge network `app_network(app)` and nothing else: on it, a process
type answers by its name (`web`, `worker`) and each instance by its dyno (`web.1`);
another app's containers are on another bridge, which Docker's isolation rules keep
apart. The web instances are still published on 127.0.0.1 for the proxy.

The engine's default address pools hold about 30 networks; Berth gives each app's network
a /24 of its own from `DEFAULT_POOL` instead (256 apps), at random among the ranges not
in use (and again if another agent on the engine took it meanwhile).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from collections.abc import Iterable

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from agent.deploy.plan import LABEL_APP, LABEL_MANAGED
from agent.errors import BerthError

log = logging.getLogger(__name__)

PREFIX = "berth-"
DEFAULT_POOL = "10.213.0.0/16"
SUBNET_PREFIX = 24
_ATTEMPTS = 5

_creating = threading.Lock()  # one creation at a time: two picks never take one range


class NetworkFailure(BerthError):
    """The engine could not make or find an app's network."""

    status = 502

    def __init__(self, network: str, detail: str) -> None:
        super().__init__(f"docker: network {network}: {detail}")
        self.network = network


def app_network(app: str) -> str:
    """The name of the app's own network."""
    return f"{PREFIX}{app}"


def free_subnet(
    pool: str, taken: Iterable[str], prefix: int = SUBNET_PREFIX,
    rng: random.Random | None = None,
) -> str | None:
    """A /`prefix` of `pool` overlapping none of `taken` (CIDRs): the first, or with `rng`
    a random one (agents picking at once rarely pick alike); None if the pool is full."""
    used = [ipaddress.ip_network(cidr, strict=False) for cidr in taken]
    free = (str(candidate) for candidate in ipaddress.ip_network(pool).subnets(new_prefix=prefix)
            if not any(candidate.overlaps(other) for other in used))
    if rng is None:
        return next(free, None)
    choices = list(free)
    return rng.choice(choices) if choices else None


def _subnets(networks: Iterable[dict[str, object]]) -> list[str]:
    found = []
    for network in networks:
        ipam = network.get("IPAM")
        configs = ipam.get("Config") if isinstance(ipam, dict) else None
        for config in configs or []:
            if isinstance(config, dict) and config.get("Subnet"):
                found.append(str(config["Subnet"]))
    return found


def ensure_app_network(
    api: docker.APIClient, app: str, installation: str, pool: str = DEFAULT_POOL
) -> str:
    """The app's network, made if missing (blocking: call it in a thread); its name.

    Another process on the engine may take the range picked meanwhile: then the pick is
    made again from a fresh listing."""
    name = app_network(app)
    with _creating:
        for attempt in range(_ATTEMPTS):
            try:
                return _ensure_once(api, app, installation, pool)
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and _named(api, name):
                    return name  # made meanwhile by someone else
                if "overlap" not in str(exc.explanation or exc) or attempt == _ATTEMPTS - 1:
                    raise NetworkFailure(name, str(exc.explanation or exc)) from exc
                time.sleep(random.uniform(0.01, 0.1))  # another agent took it: pick again
            except docker.errors.DockerException as exc:
                raise NetworkFailure(name, str(exc)) from exc
    raise NetworkFailure(name, "no free range")  # not reached


def _ensure_once(api: docker.APIClient, app: str, installation: str, pool: str) -> str:
    name = app_network(app)
    if _named(api, name):
        return name
    subnet = free_subnet(pool, _subnets(api.networks()), rng=random.Random())
    if subnet is None:
        raise NetworkFailure(name, f"no free /{SUBNET_PREFIX} left in {pool}")
    api.create_network(
        name, driver="bridge", check_duplicate=True,
        labels={LABEL_MANAGED: installation, LABEL_APP: app},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]))
    log.info("network created app=%s network=%s subnet=%s", app, name, subnet)
    return name


def _named(api: docker.APIClient, name: str) -> list[dict[str, object]]:
    """Networks called exactly `name` (the engine's name filter matches parts too)."""
    return [n for n in api.networks(names=[name]) if n.get("Name") == name]


def remove_app_network(api: docker.APIClient, app: str) -> bool:
    """Remove the app's network (blocking); False when something still uses it."""
    name = app_network(app)
    try:
        for network in _named(api, name):
            api.remove_network(network["Id"])
    except docker.errors.NotFound:
        return True
    except docker.errors.DockerException as exc:
        log.warning("network not removed network=%s reason=%s", name, exc)
        return False
    return True


def installation_networks(api: docker.APIClient, installation: str) -> dict[str, str]:
    """App name -> network name of the app networks this installation made."""
    try:
        found = api.networks(filters={"label": f"{LABEL_MANAGED}={installation}"})
    except docker.errors.DockerException as exc:
        raise NetworkFailure("list", str(exc)) from exc
    result = {}
    for network in found:
        app = (network.get("Labels") or {}).get(LABEL_APP)
        if app and network.get("Name") == app_network(app):
            result[app] = app_network(app)
    return result
