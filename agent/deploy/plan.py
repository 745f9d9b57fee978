"""What to run for a release, as plain values: instances, names, labels, environment.

Pure: no Docker, no sockets. The orchestrator and the reconciler turn these specs into
containers through the runtime adapter, and read running containers back through the
same labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.build import APP_DIR, shell_argv
from agent.errors import BerthError, echo
from agent.releases import Release

# Set by the runtime adapter to the installation's id, so two Berth agents on one
# engine (or a test run beside a real install) never touch each other's containers.
LABEL_MANAGED = "berth.managed"
LABEL_APP = "berth.app"
LABEL_RELEASE = "berth.release"
LABEL_PROCESS = "berth.process"
LABEL_INDEX = "berth.index"
LABEL_ROLE = "berth.role"  # "process" (formation instances), "release" (release phase), "run"

WEB = "web"


@dataclass(frozen=True)
class Instance:
    """One process instance of a release: `web.1`, `worker.2`, ..."""

    process: str
    index: int

    @property
    def dyno(self) -> str:
        return f"{self.process}.{self.index}"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...]  # () = the image's own CMD
    env: Mapping[str, str]
    labels: Mapping[str, str]
    restart_policy: str
    publish_port: int | None = None  # host port on 127.0.0.1 for the container port
    container_port: int = 5000
    log_max_size: str = "10m"
    log_max_files: int = 3
    extra: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[str, str], ...] = ()  # (host directory, container path)
    # A tar file extracted into code_dir before the first start (agent.deploy.earlystart).
    code: Path | None = None
    code_dir: str = APP_DIR
    tty: bool = False  # a terminal with stdin open (`berth run` from a terminal)
    # Every container joins its app's own network (agent.deploy.networks), where it also
    # answers to these names: its process type and its dyno (`web`, `web.1`).
    aliases: tuple[str, ...] = ()


def instances(formation: Mapping[str, int], processes: Mapping[str, str]) -> list[Instance]:
    """The instances a formation asks for, limited to the release's process types."""
    result = []
    for process in sorted(processes):
        for index in range(1, formation.get(process, 0) + 1):
            result.append(Instance(process, index))
    return result


def initial_formation(
    processes: Mapping[str, str], previous: Mapping[str, int], requested: Mapping[str, int]
) -> dict[str, int]:
    """The formation for a release: the app's current scale, `web=1` for a new web type.

    Like Heroku and Dokku: web starts with one instance, other types with none until
    scaled (`requested` comes from app.json's formation on an app's first deploy).
    """
    formation = {}
    for process in processes:
        if process in previous:
            formation[process] = previous[process]
        elif process in requested:
            formation[process] = requested[process]
        else:
            formation[process] = 1 if process == WEB else 0
    return formation


def container_name(app: str, release: int, instance: Instance, generation: str) -> str:
    """Unique per roll-out (`generation`), so a restart of the same release can start
    its new containers while the old ones, same release and instance, still serve."""
    return f"berth-{app}-v{release}-{instance.process}-{instance.index}-{generation}"


def process_command(command: str) -> tuple[str, ...]:
    """A Procfile command runs under /bin/sh like Heroku's (with `exec` when it is one
    simple command, so the app itself receives SIGTERM); "" keeps the image's CMD."""
    return tuple(shell_argv(command)) if command else ()


def environment(
    config: Mapping[str, str], instance: Instance | None, container_port: int
) -> dict[str, str]:
    env = dict(config)
    env["PORT"] = str(container_port)
    env["DYNO"] = instance.dyno if instance else "release.1"
    # tini (docker's --init) passes signals to the whole process group, so a SIGTERM
    # reaches the app even when /bin/sh -c did not exec it.
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    return env


def labels(app: str, release: int, role: str, instance: Instance | None) -> dict[str, str]:
    result = {
        LABEL_APP: app,
        LABEL_RELEASE: str(release),
        LABEL_ROLE: role,
    }
    if instance is not None:
        result[LABEL_PROCESS] = instance.process
        result[LABEL_INDEX] = str(instance.index)
    return result


def instance_spec(
    release: Release,
    instance: Instance,
    *,
    restart_policy: str,
    host_port: int | None,
    container_port: int,
    log_max_size: str,
    log_max_files: int,
    generation: str,
    mounts: tuple[tuple[str, str], ...] = (),
    code: Path | None = None,
) -> ContainerSpec:
    return ContainerSpec(
        name=container_name(release.app, release.number, instance, generation),
        image=release.image,
        command=process_command(release.processes.get(instance.process, "")),
        env=environment(release.config, instance, container_port),
        labels=labels(release.app, release.number, "process", instance),
        restart_policy=restart_policy,
        publish_port=host_port if instance.process == WEB else None,
        container_port=container_port,
        log_max_size=log_max_size,
        log_max_files=log_max_files,
        mounts=mounts,
        code=code,
        aliases=(instance.process, instance.dyno),
    )


def one_off_spec(
    release: Release, command: str, number: int, token: str, *, container_port: int,
    mounts: tuple[tuple[str, str], ...] = (), tty: bool = False,
) -> ContainerSpec:
    """`berth run`: `command` in a one-off container of `release` (its image and config),
    `run.NUMBER` like Heroku's one-off dynos, never restarted, never routed. `token`
    makes the container's name unique (two runs may draw the same number)."""
    return ContainerSpec(
        name=f"berth-{release.app}-v{release.number}-run-{number}-{token}",
        image=release.image,
        # Plainly through the shell (no `exec`: `exit 3` or `cd x && y` must work; tini
        # signals the whole process group anyway).
        command=("/bin/sh", "-c", command),
        env=environment(release.config, Instance("run", number), container_port),
        labels=labels(release.app, release.number, "run", None),
        restart_policy="no",
        mounts=mounts,
        tty=tty,
    )


def release_phase_spec(
    release: Release, *, container_port: int, mounts: tuple[tuple[str, str], ...] = (),
) -> ContainerSpec:
    return ContainerSpec(
        name=f"berth-{release.app}-v{release.number}-release",
        image=release.image,
        command=process_command(release.release_command),
        env=environment(release.config, None, container_port),
        labels=labels(release.app, release.number, "release", None),
        restart_policy="no",
        mounts=mounts,
    )


def check_known(app: str, changes: Mapping[str, int], known: set[str]) -> None:
    """Refuse a scale of a process type the app does not have."""
    unknown = sorted(set(changes) - known)
    if unknown:
        raise BerthError(f"{app} has no process type {echo(unknown[0])} "
                         f"(known: {', '.join(sorted(known)) or 'none yet'})")


def formation_text(formation: Mapping[str, int]) -> str:
    """`web=2 worker=1`."""
    return " ".join(f"{k}={v}" for k, v in sorted(formation.items()))
