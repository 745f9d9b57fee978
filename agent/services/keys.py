"""SSH keys that may push and run verbs: the database is the truth, and the berth user's
authorized_keys (with its forced command's script) is rewritten from it on every change
and at start."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence

from agent import forcedcommand
from agent.config import Config
from agent.errors import BerthError
from agent.names import check_app, check_key_name
from agent.sshkeys import (
    parse_public_key,
    read_authorized_keys,
    render,
    write_authorized_keys,
)
from agent.store.keys import KeyStore, SshKey

MAX_APPS_PER_KEY = 100


class Keys:
    """The one owner of key changes and of authorized_keys."""

    def __init__(self, config: Config, keys: KeyStore, ssh_command: str) -> None:
        self._config = config
        self._keys = keys
        self._ssh_command = ssh_command

    def list(self) -> list[SshKey]:
        return self._keys.list()

    def add(self, name: str, public_key: str, apps: Sequence[str] | None = None) -> SshKey:
        """Store the key (an admin key, or one limited to `apps`) and write
        authorized_keys; a failed write removes the key."""
        check_key_name(name)
        public_key, fingerprint = parse_public_key(public_key)
        scope = None if apps is None else tuple(dict.fromkeys(check_app(a) for a in apps))
        if scope is not None and not 0 < len(scope) <= MAX_APPS_PER_KEY:
            raise BerthError(f"--apps takes 1 to {MAX_APPS_PER_KEY} app names")
        key = SshKey(name, public_key, fingerprint, time.time(), scope)
        self._keys.add(key)
        try:
            self.sync()
        except BaseException:
            self._keys.remove(name)
            raise
        return key

    def remove(self, name: str) -> None:
        self._keys.remove(check_key_name(name))
        self.sync()

    def sync(self) -> None:
        """Rewrite the berth user's authorized_keys from the database; its lines run the
        forced command's script, (re)written first."""
        paths = self._config.paths
        forcedcommand.install(paths.forced_command,
                              forcedcommand.script(paths.repos, self._ssh_command))
        path = self._config.ssh.authorized_keys
        existing = read_authorized_keys(path, owner=self._config.ssh.user)
        text = render(existing, shlex.quote(str(paths.forced_command)), self._keys.list())
        write_authorized_keys(path, text, owner=self._config.ssh.user)
