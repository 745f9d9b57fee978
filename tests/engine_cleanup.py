"""Test hygiene on the shared Docker engine: what a test's installation made goes.

App networks come from a pool of 256 ranges: one left behind by each test run would
exhaust it on a long-lived CI engine. Containers go first (a network in use cannot)."""

from __future__ import annotations

import contextlib

import docker
import docker.errors

from agent.deploy.networks import installation_networks, remove_app_network


def remove_installation(api: docker.APIClient, installation: str) -> list[str]:
    """Remove the containers (processes, one-offs, add-ons) and the app networks made
    under `installation`; the networks that could not be removed (still in use)."""
    for label in (f"berth.managed={installation}", f"berth.addon.managed={installation}"):
        for found in api.containers(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile
                api.remove_container(found["Id"], force=True)
    return [name for app, name in installation_networks(api, installation).items()
            if not remove_app_network(api, app)]
