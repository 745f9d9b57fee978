"""Fixtures for the builder's tests: a Docker client, settings on the stand-in image,
a way to build and to run what was built, and cleanup of every image and container.

Images are tagged `berth-test-build/NAME:N` and removed when the module's tests end;
containers carry the label `berth-test=build` and are removed after each use.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from agent.build import (
    Builder,
    BuildFailed,
    BuildRequest,
    BuildSettings,
    BuiltImage,
    CodeBase,
    shell_argv,
)
from tests.conftest import STAND_IN_IMAGE

APPS = Path(__file__).resolve().parents[1] / "apps"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TAG_PREFIX = "berth-test-build"
_serial = itertools.count(1)


def stand_in_settings(**changes: Any) -> BuildSettings:
    """Build settings for tests: every base image is the stand-in, the host's CA bundle
    is trusted (the registries are only reachable through TLS interception here)."""
    base = BuildSettings(
        python_image=STAND_IN_IMAGE,
        node_image=STAND_IN_IMAGE,
        static_image=STAND_IN_IMAGE,
        ca_bundle=HOST_CA_BUNDLE,
        min_free_disk_mb=256,
        timeout=600.0,
    )
    return replace(base, **changes)


def copy_app(name: str, into: Path) -> Path:
    target = into / name
    shutil.copytree(APPS / name, target, symlinks=True)
    return target


@dataclass
class BuildRun:
    image: BuiltImage
    lines: list[str] = field(default_factory=list)
    bases: list[CodeBase] = field(default_factory=list)  # what on_base heard


class Lab:
    """Builds with a Builder against the real engine and remembers what to clean up."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.tags: list[str] = []
        self.layers: list[str] = []  # what failed builds left as cache

    def tag(self, name: str) -> str:
        tag = f"{TAG_PREFIX}/{name}:{next(_serial)}"
        self.tags.append(tag)
        return tag

    def build(
        self,
        source: Path,
        *,
        name: str = "app",
        settings: BuildSettings | None = None,
        env: Mapping[str, str] | None = None,
        lines: list[str] | None = None,
    ) -> BuildRun:
        lines = [] if lines is None else lines
        builder = Builder(settings or stand_in_settings(), self.client)
        request = BuildRequest(app=name, source=source, tag=self.tag(name), env=dict(env or {}))
        bases: list[CodeBase] = []
        try:
            image = asyncio.run(builder.build(request, lines.append, bases.append))
        except BuildFailed as failure:
            if failure.cache_layer:
                self.layers.append(failure.cache_layer)
            raise
        return BuildRun(image, lines, bases)

    @contextmanager
    def serve(
        self, image: str, command: str | None, env: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """Run `image` (with `command` through shell_argv, else its CMD), port 5000
        published on 127.0.0.1; yields the base URL once it answers HTTP."""
        container = self.client.containers.run(
            image,
            command=shell_argv(command) if command else None,
            detach=True,
            environment={"PORT": "5000", **(env or {})},
            ports={"5000/tcp": ("127.0.0.1", None)},
            labels={"berth-test": "build"},
        )
        try:
            container.reload()
            port = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
            url = f"http://127.0.0.1:{port}"
            wait_for_http(url, container)
            yield url
        finally:
            container.remove(force=True)

    def run(self, image: str, command: list[str]) -> str:
        """Output of a one-off container running `command` in `image`."""
        output = self.client.containers.run(
            image, command=command, remove=True, labels={"berth-test": "build"}
        )
        return bytes(output).decode()

    def cleanup(self) -> None:
        for tag in self.tags:
            try:
                self.client.images.remove(tag, force=True, noprune=False)
            except docker.errors.ImageNotFound:
                continue  # a build that failed never made it
        for layer in self.layers:
            try:
                self.client.images.remove(layer, noprune=False)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError:
                continue  # a later build grew on it (and was removed above) or it is shared


def wait_for_http(url: str, container: Any, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    last = ""
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                response.read()
                return
        except urllib.error.HTTPError as exc:
            exc.close()
            return  # it answers HTTP
        except OSError as exc:
            last = str(exc)
        container.reload()
        if container.status == "exited":
            logs = container.logs().decode(errors="replace")
            raise AssertionError(f"container exited: {logs[-2000:]}")
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered: {last}")


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    client = docker.from_env(timeout=120)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[Lab]:
    lab = Lab(docker_client)
    try:
        yield lab
    finally:
        lab.cleanup()
