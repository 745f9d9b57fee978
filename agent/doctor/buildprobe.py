"""Running the TLS reach probe (agent.doctor.tlsreach) where builds run: a short-lived
container of the Python buildpack's base image, on the network build steps use, with
build.ca_bundle copied in as builds get it (the same bytes, read by Berth, not a path the
engine resolves). docker-py is blocking: call it from a thread.

The container has a deadline and is removed afterwards whatever happens (done, failed,
timed out, or this process interrupted between the two calls); what it printed before
the deadline still counts.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from agent.build.packs import image_for
from agent.build.settings import BuildSettings
from agent.doctor import tlsreach
from agent.errors import BerthError

log = logging.getLogger(__name__)

# The classic builder's steps run on the engine's default network (the build passes no
# network mode): for a container that is "default", the bridge.
BUILD_NETWORK = "default"
EXTRA_CA = "/opt/berth/ca/extra.crt"  # where builds keep build.ca_bundle (agent.build.ca)
ENGINE_TIMEOUT = 15.0  # each call to the engine
MEMORY = 128 * 1024 * 1024


class BuildContainerUnavailable(BerthError):
    """No probe container could run: the engine does not answer, the build's base image
    is not on this server yet, or it would not run the probe. `fix` says what to do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.fix = fix


@dataclass(frozen=True)
class Outcome:
    """How one target fared: kind is one of tlsreach.KINDS, or "timeout" when the
    container's deadline passed before it said."""

    target: str
    kind: str
    error: str = ""


def image(settings: BuildSettings) -> str:
    """The base image of a Python build with the default version."""
    return image_for(settings.python_image, settings.python_version)


def run_probe(docker_url: str, settings: BuildSettings, bundle: bytes | None,
              targets: Sequence[str], timeout: float, deadline: float) -> list[Outcome]:
    """Each target's outcome, probed from a build-like container (`timeout` per
    connection, `deadline` for the container's whole run)."""
    base = image(settings)
    try:
        client = docker.DockerClient(base_url=docker_url, timeout=ENGINE_TIMEOUT)
    except docker.errors.DockerException as exc:
        raise _refused(exc) or BuildContainerUnavailable(
            f"the Docker engine does not answer: {exc}",
            "start Docker (see the docker engine line)") from exc
    try:
        return _in_container(client, base, bundle, targets, timeout, deadline)
    except docker.errors.ImageNotFound as exc:
        raise BuildContainerUnavailable(
            f"the build base image {base} is not on this server yet",
            "run berth doctor again after the first Python build (it pulls the image): "
            "builds may not reach what this host reaches (Docker's DNS, forwarding, MTU)",
        ) from exc
    except docker.errors.APIError as exc:
        raise BuildContainerUnavailable(
            f"a container of {base} did not run: {exc.explanation or exc}",
            f"builds start from {base} too: check build.python_image") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _refused(exc) or BuildContainerUnavailable(
            f"the Docker engine failed: {exc}", "check the Docker engine (see its line)") from exc
    finally:
        client.close()


def _refused(exc: BaseException) -> BuildContainerUnavailable | None:
    """What to say when this user may not use the engine's socket (doctor run over SSH
    runs as the berth user, which is not in the docker group); None for other errors."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, PermissionError):
        seen = seen.__cause__ or seen.__context__ or next(
            (a for a in seen.args if isinstance(a, BaseException)), None)
    if seen is None and "permission denied" not in str(exc).lower():
        return None
    return BuildContainerUnavailable(
        "this user may not use the Docker engine (permission denied on its socket)",
        "run `berth doctor` on the server as root to check from a build container")


def _in_container(client: docker.DockerClient, base: str, bundle: bytes | None,
                  targets: Sequence[str], timeout: float, deadline: float) -> list[Outcome]:
    source = Path(tlsreach.__file__).read_text(encoding="utf-8")
    command = ["python3", "-c", source, str(timeout), EXTRA_CA if bundle else "", *targets]
    container = client.containers.create(
        base, entrypoint=command, command=[], network_mode=BUILD_NETWORK,
        name=f"berth-doctor-{uuid.uuid4().hex[:12]}", labels={"berth.doctor": "registries"},
        mem_limit=MEMORY)
    try:
        if bundle is not None:
            container.put_archive("/", _archive(EXTRA_CA, bundle))
        container.start()
        try:
            container.wait(timeout=deadline)
        except requests.exceptions.RequestException:
            log.info("registry probe container passed its deadline seconds=%s", deadline)
        output = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        errors = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    finally:
        _remove(container)
    return outcomes(output, targets, deadline, errors)


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("could not remove the registry probe container id=%s error=%s",
                    container.id, exc)


def _archive(path: str, data: bytes) -> bytes:
    """A tar holding `data` at `path` (relative to /), readable by all."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def outcomes(output: str, targets: Sequence[str], deadline: float,
             errors: str = "") -> list[Outcome]:
    """The probe's JSON lines as outcomes in `targets`' order; a target it did not
    report on timed out, or, when the program itself failed, says how (pure)."""
    said: dict[str, Outcome] = {}
    for line in output.splitlines():
        try:
            fields = json.loads(line)
            said[fields["target"]] = Outcome(fields["target"], fields["kind"], fields["error"])
        except (ValueError, KeyError, TypeError):
            continue
    last_error = errors.strip().splitlines()[-1] if errors.strip() else ""

    def unsaid(target: str) -> Outcome:
        if last_error:
            return Outcome(target, "failed", f"the probe failed in the container: {last_error}")
        return Outcome(target, "timeout", f"no answer within {deadline:g} s")

    return [said.get(target) or unsaid(target) for target in targets]
