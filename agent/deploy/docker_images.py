"""Berth's images in the Docker engine: existence, parents, files inside, removal
(failed and killed builds' leftovers included: by label, and by the builds' records of
their step images, agent.build.steplog)."""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import docker
import docker.errors

from agent.build import steplog
from agent.deploy.docker_engine import EngineClient, RuntimeFailure, explain
from agent.deploy.plan import LABEL_APP, LABEL_MANAGED

log = logging.getLogger(__name__)

STEP_CONTAINER_WAIT = 10.0  # seconds to wait for the engine to let go of a step container


class Images(EngineClient):
    """Inspects and removes built images."""

    async def remove_image(self, reference: str) -> None:
        try:
            await asyncio.to_thread(self._api.remove_image, reference)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # In use by a container (a straggler, or a user's own): keep it, say why.
            log.warning("image not removed ref=%s reason=%s", reference, explain(exc))

    async def remove_app_images(self, app: str) -> None:
        """Every image labelled as the app's, failed builds' leftover layers included."""
        try:
            # Top-level images only (tagged, or dangling leftovers of failed builds):
            # removing one removes the untagged layers beneath it.
            images = await asyncio.to_thread(
                self._api.images, filters={"label": f"{LABEL_APP}={app}"})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"list images of {app}", explain(exc)) from exc
        for image in images:
            for reference in image.get("RepoTags") or []:
                if reference != "<none>:<none>":
                    await self.remove_image(reference)
            await self.remove_image(image["Id"])
        await self._remove_recorded_steps(app)

    async def remove_build_leftovers(self, app: str) -> None:
        """Untagged images labelled as the app's that nothing builds on: what builds
        killed midway (an agent killed, a deadline) left behind."""
        try:
            images = await asyncio.to_thread(self._api.images, filters={
                "label": f"{LABEL_APP}={app}", "dangling": True})
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"list images of {app}", explain(exc)) from exc
        for image in images:
            log.info("removing a killed build's image app=%s image=%s", app, image["Id"][:19])
            await self.remove_image(image["Id"])
        await self._remove_recorded_steps(app)

    async def _remove_recorded_steps(self, app: str) -> None:
        """The step containers that failed or killed builds of the app recorded, and
        their step images still unnamed that nothing builds on; then the records."""
        if self._build_steps is None:
            return
        records = await asyncio.to_thread(steplog.records, self._build_steps, app)
        if not records:
            return
        recorded, containers = await asyncio.to_thread(steplog.recorded, records)
        for container_id in containers:
            log.info("removing a killed build's step container app=%s container=%s",
                     app, container_id[:12])
            await asyncio.to_thread(self._remove_step_container, container_id)
        try:
            listed = await asyncio.to_thread(self._api.images, all=True)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"list images of {app}", explain(exc)) from exc
        for image_id in steplog.removable(recorded, [_listed(image) for image in listed]):
            log.info("removing a killed build's step image app=%s image=%s", app, image_id[:19])
            await self.remove_image(image_id)
        await asyncio.to_thread(steplog.forget, records)

    def _remove_step_container(self, container_id: str) -> None:
        """Force-remove it; while the engine is still removing it (a build cancelled
        moments ago), try again until STEP_CONTAINER_WAIT has passed."""
        deadline = time.monotonic() + STEP_CONTAINER_WAIT
        while True:
            try:
                self._api.remove_container(container_id, force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.DockerException as exc:
                if time.monotonic() > deadline:
                    log.warning("step container not removed container=%s reason=%s",
                                container_id[:12], explain(exc))
                    return
            time.sleep(0.2)

    async def image_parent(self, reference: str) -> str:
        try:
            image = await asyncio.to_thread(self._api.inspect_image, reference)
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect image {reference}", explain(exc)) from exc
        return str(image.get("Parent") or "")

    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]:
        return await asyncio.to_thread(self._read_files, image, paths)

    def _read_files(self, image: str, paths: Sequence[str]) -> dict[str, bytes]:
        """From a container created (never started) for the purpose, then removed."""
        try:
            container_id = str(self._api.create_container(
                image, command=["true"], labels={LABEL_MANAGED: self._installation})["Id"])
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", explain(exc)) from exc
        try:
            return {path: data for path in paths
                    if (data := self._read_file(container_id, path)) is not None}
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", explain(exc)) from exc
        except tarfile.TarError as exc:
            raise RuntimeFailure(f"read files of {image[:19]}", str(exc)) from exc
        finally:
            self._force_remove(container_id)

    def _read_file(self, container_id: str, path: str) -> bytes | None:
        """A regular file's bytes; None when missing or not a regular file (a symlink is
        not followed)."""
        try:
            stream, _ = self._api.get_archive(container_id, path)
        except docker.errors.NotFound:
            return None
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            if member is not None and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    return handle.read()
        return None

    async def image_exists(self, reference: str) -> bool:
        try:
            await asyncio.to_thread(self._api.inspect_image, reference)
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"inspect image {reference}", explain(exc)) from exc
        return True


def _listed(image: Mapping[str, Any]) -> steplog.EngineImage:
    """An entry of the engine's image list, as `steplog.removable` reads it."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
    return steplog.EngineImage(str(image["Id"]), str(image.get("ParentId") or ""),
                               bool(tags or digests))
