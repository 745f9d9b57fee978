"""The proxy's listening sockets, kept open from one agent to the next.

A restart or an upgrade must not refuse a connection, so the listening sockets on 80 and
443 outlive the agent that uses them, and connections made while no agent accepts wait
in the kernel's backlog. Both ways a new agent gets them speak systemd's socket
activation protocol (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from 3):

- under systemd, `berth.socket` holds the listeners and passes them to every start of
  `berth.service`;
- on SIGHUP (any init, `systemctl reload berth` too) the agent shuts down in full but
  keeps the listeners, then execs itself (the installed code, so an upgrade takes
  effect) with them as descriptors 3 and 4 and the variables set for its own pid.

Without inherited sockets (the first start without systemd, a test) the agent binds its
own. `inherited_fds` is the pure reading of the protocol; `Listeners` is the adapter.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import socket
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import NoReturn

from agent.proxy.settings import ProxySettings
from agent.proxy.sockets import listening_socket, takes_ipv4_only, usable_listen_address

log = logging.getLogger(__name__)

FIRST_FD = 3  # SD_LISTEN_FDS_START
NAMES = ("http", "https")
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def inherited_fds(environ: Mapping[str, str], pid: int) -> list[tuple[str, int]]:
    """The (name, descriptor) pairs passed to process `pid`; none when they were meant for
    another process (a variable inherited by accident) or are malformed. Names are
    `LISTEN_FDNAMES`' entries, "" where it gives none."""
    try:
        if int(environ.get("LISTEN_PID", "")) != pid:
            return []
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if not 0 < count < 64:
        return []
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    names += [""] * (count - len(names))
    return [(names[i], FIRST_FD + i) for i in range(count)]


def handover_environment(environ: Mapping[str, str], pid: int, names: list[str]) -> dict[str, str]:
    """The environment an agent execs with to pass `names`' sockets from descriptor 3 on."""
    passed = {k: v for k, v in environ.items() if k not in VARIABLES}
    passed.update(LISTEN_PID=str(pid), LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names))
    return passed


@dataclass
class Listeners:
    """The agent's listening sockets: `http`, and `https` unless HTTPS is off. They stay
    open for the agent's whole life; the proxy gets duplicates it may close."""

    http: socket.socket
    https: socket.socket | None

    @classmethod
    def open(cls, settings: ProxySettings, environ: MutableMapping[str, str] | None = None) -> Listeners:
        """Take the sockets passed to this process, bind those missing. Raises OSError
        when a port cannot be bound (nothing stays open then)."""
        environ = os.environ if environ is None else environ
        passed = _adopt(inherited_fds(environ, os.getpid()), settings)
        for name in VARIABLES:  # not for the processes the agent starts
            environ.pop(name, None)
        wanted = {"http": settings.http_port, "https": settings.https_port}
        missing = {n: p for n, p in wanted.items() if p is not None and n not in passed}
        host = usable_listen_address(settings.listen) if missing else settings.listen
        try:
            for name, port in missing.items():
                passed[name] = listening_socket(host, port, settings.backlog)
        except OSError:
            for sock in passed.values():
                sock.close()
            raise
        if settings.https_port is None and "https" in passed:
            passed.pop("https").close()
        return cls(passed["http"], passed.get("https"))

    def for_proxy(self) -> dict[str, socket.socket]:
        """Duplicates of the sockets, by name, for the proxy to serve on and close."""
        return {name: sock.dup() for name, sock in self._by_name().items()}

    def close(self) -> None:
        for sock in self._by_name().values():
            sock.close()

    def reexec(self) -> NoReturn:
        """Replace this process by a new start of the same command, the installed code,
        passing the sockets on. Returns only by raising OSError (exec failed)."""
        named = self._by_name()
        argv = [sys.executable, *sys.orig_argv[1:]]
        environ = handover_environment(os.environ, os.getpid(), list(named))
        log.info("restarting in place: %s", " ".join(argv))
        # Before the sockets take descriptors 3 and up: whatever held those (the log
        # file, say) must not write to them or close them after.
        logging.shutdown()
        gc.disable()
        # Out of the way first, so that placing one cannot overwrite another.
        above = FIRST_FD + len(named)
        moved = [fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, above) for sock in named.values()]
        for offset, fd in enumerate(moved):
            os.dup2(fd, FIRST_FD + offset, inheritable=True)
        os.execve(sys.executable, argv, environ)

    def _by_name(self) -> dict[str, socket.socket]:
        named = {"http": self.http}
        if self.https is not None:
            named["https"] = self.https
        return named


def _adopt(fds: list[tuple[str, int]], settings: ProxySettings) -> dict[str, socket.socket]:
    """The passed descriptors as sockets, by the name they serve: their own name, else
    the port they listen on. One listening elsewhere than the settings say is closed
    (the agent then binds what the settings ask)."""
    ports = {"http": settings.http_port, "https": settings.https_port}
    adopted: dict[str, socket.socket] = {}
    for name, fd in fds:
        try:
            sock = socket.socket(fileno=fd)
            port = int(sock.getsockname()[1])
        except (OSError, IndexError, TypeError):
            log.warning("passed descriptor %d is not a listening socket: ignored", fd)
            continue
        if name not in NAMES:
            name = next((n for n, p in ports.items() if p == port), name)
        wanted = ports.get(name)
        if name in adopted or wanted is None or wanted not in (0, port):
            log.warning("passed socket %s on port %d is not one the settings ask for: closed",
                        name or fd, port)
            sock.close()
            continue
        sock.setblocking(False)
        adopted[name] = sock
        log.info("listening socket taken over name=%s port=%d", name, port)
        if takes_ipv4_only(sock, settings.listen):
            log.warning("passed socket %s takes IPv4 only (an older Berth bound it): IPv6 "
                        "clients are refused until the agent is stopped and started", name)
    return adopted
