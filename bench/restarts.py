"""The agent-restart faults of the failover bench (bench/failover.py): the restarts a
user's upgrade or service manager performs (in place on SIGHUP; under systemd, a stop and
a start with the sockets `berth.socket` holds) against a stop (SIGTERM, then started)
and a crash (`kill -9`, then started)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tests.e2e.harness import AgentProcess, listening_sockets

if TYPE_CHECKING:
    from bench.failover import Outcome

Fault = Callable[["Outcome"], None]


def _timed(outcome: Outcome, restart: Callable[[], None]) -> None:
    started = time.monotonic()
    restart()
    outcome.notes.append(
        f"agent back (control socket answers) after {time.monotonic() - started:.2f} s"
    )


def in_place(agent: AgentProcess) -> Fault:
    """SIGHUP: the agent execs itself keeping its listening sockets (what `berth
    version`'s advice, install.sh, the init script's reload and `systemctl reload` do)."""
    return lambda outcome: _timed(outcome, agent.restart_in_place)


def socket_activated(agent: AgentProcess, sockets: list[socket.socket]) -> Fault:
    """`systemctl restart berth`: a stop (SIGTERM), then a start handed the same
    listening sockets (LISTEN_FDS)."""

    def restart() -> None:
        agent.stop()
        agent.start(sockets=sockets)

    return lambda outcome: _timed(outcome, restart)


def stop_start(agent: AgentProcess, *, kill: bool) -> Fault:
    """A stop (SIGTERM) or a crash (`kill -9`), then a plain start: the agent binds its
    ports anew, so nothing listens in between."""

    def restart() -> None:
        agent.kill() if kill else agent.stop()
        agent.start()

    return lambda outcome: _timed(outcome, restart)


@contextmanager
def held_sockets(agent: AgentProcess) -> Iterator[list[socket.socket]]:
    """The agent restarted onto sockets held outside it (as berth.socket holds them),
    and back on sockets of its own afterwards."""
    agent.stop()
    sockets = listening_sockets(agent.http_port, agent.https_port)
    try:
        agent.start(sockets=sockets)
        yield sockets
        agent.stop()
    finally:
        for sock in sockets:
            sock.close()
    agent.start()
