"""SSH public keys and the authorized_keys file of the `berth` user.

Every key Berth knows is written with a forced command (`SCRIPT ssh-command NAME`, the
script of agent.forcedcommand in front of `berth ssh-command`) and every restriction
OpenSSH offers (`restrict`, OpenSSH 7.2 and later, which also covers restrictions added
in later versions, plus the explicit no-* options) but one: `pty` after `restrict` gives
back a terminal when the client asks for one (`ssh -t`), for the interactive verbs
(`addons:psql`, `addons:redis-cli`, `run APP bash`). A terminal changes nothing else: the
forced command still runs whatever the client asked for, so a key can push and run
Berth's verbs and nothing else: no shell, no port forwarding, no agent or X11
forwarding, no ~/.ssh/rc. Lines that are not Berth's are kept as they are. The file is
rewritten atomically from the database on every change and at the agent's start, so a
line an older Berth wrote (`no-pty`) takes the current options.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import pwd
import shlex
import struct
from collections.abc import Iterable
from pathlib import Path

from agent import hostfiles
from agent.errors import BerthError
from agent.store.keys import SshKey

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
# `pty` must follow `restrict`: options apply in order, and `restrict` turns it off.
OPTIONS = "restrict,pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc"
MARKER = " ssh-command "


class InvalidKey(BerthError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid public key: {problem}")


def parse_public_key(text: str) -> tuple[str, str]:
    """One public key line -> (normalized "type base64", SHA256 fingerprint)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        raise InvalidKey("expected exactly one line such as 'ssh-ed25519 AAAA... comment'")
    fields = lines[0].split()
    if len(fields) < 2:
        raise InvalidKey("expected '<type> <base64> [comment]'")
    kind, body = fields[0], fields[1]
    if kind not in KEY_TYPES:
        raise InvalidKey(f"unsupported key type {kind!r} (options are not accepted either)")
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey("the key data is not base64") from None
    if len(blob) < 4:
        raise InvalidKey("the key data is truncated")
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4:4 + length].decode("ascii", "replace") != kind:
        raise InvalidKey("the key data does not match its type")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{kind} {body}", f"SHA256:{digest}"


SCOPED = "scoped"  # marks the forced command of a key limited to some apps


def authorized_line(command: str, key: SshKey) -> str:
    forced = f"{command} ssh-command {shlex.quote(key.name)}"
    if not key.admin:  # a third word: never the sh fast path, the agent checks the app
        forced += f" {SCOPED}"
    escaped = forced.replace("\\", "\\\\").replace('"', '\\"')
    return f'command="{escaped}",{OPTIONS} {key.public_key} berth:{key.name}'


def render(existing: str, command: str, keys: Iterable[SshKey]) -> str:
    """The new file: others' lines kept, Berth's replaced by one line per key."""
    kept = [line for line in existing.splitlines()
            if line.strip() and not _is_berths(line)]
    ours = [authorized_line(command, key) for key in keys]
    return "".join(line + "\n" for line in kept + ours)


def _is_berths(line: str) -> bool:
    return line.startswith('command="') and MARKER in line.split('"', 2)[1]


def read_authorized_keys(path: Path, *, owner: str | None) -> str:
    """The current file's text ("" when there is none yet), read without following a
    link and only when it and its directory are root's or the owner's: a link to a
    root-only file must not have its lines copied into the berth user's file."""
    owners = _owners(owner)
    try:
        with hostfiles.directory(path.parent.parent, path.parent.name, owners=owners) as fd:
            data = hostfiles.read_file(fd, path.name, path, owners=owners)
    except FileNotFoundError:
        return ""
    return "" if data is None else data.decode("utf-8", "replace")


def _owners(owner: str | None) -> set[int]:
    owners = {os.geteuid()}
    if owner is not None:
        try:
            owners.add(pwd.getpwnam(owner).pw_uid)
        except KeyError:
            raise BerthError(f"system user {owner!r} does not exist (ssh.user)") from None
    return owners


def write_authorized_keys(path: Path, text: str, *, owner: str | None) -> None:
    """Atomically replace `path` (0600, its directory 0700), owned by `owner`. The
    directory (~berth/.ssh, the berth user's to change) is opened without following
    links and must be root's or the owner's (agent.hostfiles): else UnsafePath."""
    uid = gid = -1
    if owner is not None:
        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            raise BerthError(f"system user {owner!r} does not exist (ssh.user)") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    owners = {os.geteuid()} | ({uid} if uid != -1 else set())
    chown = owner is not None and os.geteuid() == 0
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    with hostfiles.directory(path.parent.parent, path.parent.name, owners=owners,
                             create=0o700) as directory:
        os.fchmod(directory, 0o700)
        if chown:
            os.fchown(directory, uid, gid)
        hostfiles.replace_file(directory, path.name, text.encode("utf-8"), mode=0o600,
                               uid=uid if chown else -1, gid=gid if chown else -1)
