"""Host ports for web instances: free ports on 127.0.0.1 from a configured range.

Berth picks the port itself (instead of letting Docker choose) so a container keeps its
port across restarts by its restart policy and across agent restarts.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable

from agent.errors import BerthError


class NoFreePort(BerthError):
    status = 503

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"no free host port left in {low}-{high} (deploy.port_range)")


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(low: int, high: int, taken: Iterable[int], *, rng: random.Random | None = None) -> int:
    """A port in [low, high] not in `taken` and bindable right now."""
    taken = set(taken)
    rng = rng or random.Random()
    candidates = [p for p in range(low, high + 1) if p not in taken]
    rng.shuffle(candidates)
    for port in candidates[:200]:
        if bindable(port):
            return port
    raise NoFreePort(low, high)
