"""Early start: a push's new code starts while the engine commits its image's last layer.

A buildpack build ends with one step that copies the pushed tree into /app
(`dockerfile.ends_with_code_copy`); on a code-only push every step before it is cached,
and committing that last layer is most of the build (~0.1 s). When the builder
announces the image the step runs on (`CodeBase`), the deployer starts the new
instances from that image at once, with the tree extracted into /app as the step lays
it (`agent.build.code_archive`, owned by the app user), and checks them while the build
finishes. Traffic moves only once the build succeeded and its image is exactly that base
plus the tree (the image's parent is the base): the instances then run the same files
as the release's image, which every later start (restart, scale, the reconciler) uses.
Otherwise the early instances are removed and the release starts from its image as
usual. Heroku runs dynos the same way: a stack image plus the app's slug.

Not for every deploy: an app with a release command (it must run before any instance
starts), with persistent storage mounted inside /app (extracting the tree there would
write into the mounted host directory) or with a tree over MAX_CODE_BYTES deploys the
usual way, as does any push whose early start cannot be prepared.

This module holds the pure rules and `AppUserIds`, which reads the app user's numeric
ids from a base image once (the tree's owner in the archive must be numeric).
"""

from __future__ import annotations

import logging
from typing import Mapping, Protocol, Sequence

log = logging.getLogger(__name__)

CODE_DIR = "/app"
# Above this, a tree is copied into the image layer once rather than into each
# instance's writable layer (and the deploy waits for the image, as without early start).
MAX_CODE_BYTES = 64 * 1024 * 1024
_MEMO_SIZE = 64


def allowed(release_command: str, mounts: Sequence[tuple[str, str]]) -> bool:
    """Whether a deploy may start early: no release command, no storage inside /app."""
    inside = any(path == CODE_DIR or path.startswith(CODE_DIR + "/") for _, path in mounts)
    return not release_command and not inside


def parse_ids(passwd: str, group: str, user: str) -> tuple[int, int] | None:
    """`user`'s uid (from /etc/passwd) and the gid of the group named `user` (from
    /etc/group), as `COPY --chown=user:user` resolves them; None if either is missing."""
    uid = _field(passwd, user, 2)
    gid = _field(group, user, 2)
    return None if uid is None or gid is None else (uid, gid)


def _field(text: str, name: str, index: int) -> int | None:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > index and fields[0] == name and fields[index].isdigit():
            return int(fields[index])
    return None


class FileReader(Protocol):
    async def read_files(self, image: str, paths: Sequence[str]) -> Mapping[str, bytes]: ...


class AppUserIds:
    """The app user's (uid, gid) in base images, read from each image once."""

    def __init__(self, user: str) -> None:
        self._user = user
        self._known: dict[str, tuple[int, int] | None] = {}

    async def of(self, reader: FileReader, image: str) -> tuple[int, int] | None:
        if image not in self._known:
            files = await reader.read_files(image, ("/etc/passwd", "/etc/group"))
            text = {path: data.decode("utf-8", "replace") for path, data in files.items()}
            ids = parse_ids(text.get("/etc/passwd", ""), text.get("/etc/group", ""), self._user)
            if ids is None:
                log.info("no early start: image=%s has no user/group %s", image[:19], self._user)
            if len(self._known) >= _MEMO_SIZE:
                self._known.clear()
            self._known[image] = ids
        return self._known[image]
