"""The Docker engine adapter for running containers: its parts assembled in one class.

`DockerRuntime` satisfies `agent.deploy.runtime.ContainerRuntime`. Each part owns one
kind of work: containers' lifecycle (`docker_containers`), one-offs (`docker_oneoff`),
logs (`docker_logs`), images (`docker_images`); what they share is in `docker_engine`.
"""

from __future__ import annotations

from agent.deploy.docker_engine import RuntimeFailure, installation_id, restart_policy
from agent.deploy.docker_images import Images
from agent.deploy.docker_logs import ContainerLogs
from agent.deploy.docker_oneoff import HUNG_UP, OneOffs

__all__ = ["HUNG_UP", "DockerRuntime", "RuntimeFailure", "installation_id", "restart_policy"]


class DockerRuntime(OneOffs, ContainerLogs, Images):
    """Runs, lists, stops and removes Berth's containers through the Docker engine.

    Only containers labelled with this installation's id are listed or touched.
    """
