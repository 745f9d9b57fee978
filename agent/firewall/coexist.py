"""Other firewall managers sharing the ruleset, and whether Berth runs beside them (pure).

Detection reads the live ruleset of the namespace Berth applies to (`nft list ruleset`,
which shows iptables-nft rules too), so it sees what is loaded, not what is installed:

- ufw: chains named `ufw-*` / `ufw6-*`. Berth works beside it. ufw only ever rewrites its
  own chains (iptables-restore), never Berth's table, and a packet must be accepted by
  every base chain on its hook, so the result is the intersection of both policies: a
  port is reachable only when ufw *and* Berth allow it. That is never more open than
  either alone, and Berth's forward chain closes the Docker hole ufw leaves.
- firewalld: a `firewalld` table (nftables backend) or its zone chains (`IN_public`,
  `INPUT_direct`, ... with the iptables backend). Berth refuses. Depending on version and
  settings firewalld flushes tables that are not its own when it starts or reloads
  (firewalld#742, #863), which would silently remove Berth's table and reopen Docker's
  published ports, and it rebuilds its own policy from zones Berth cannot see.
- Docker's iptables chains are reported for information: Berth filters beside them and
  never edits them.

Limit: rules loaded with iptables-legacy (not the nft backend, Debian's default since 10)
do not show in `nft list ruleset`, so a ufw running on legacy iptables goes unreported;
the intersection rule above still holds for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.firewall.errors import FirewallConflict

_TABLE = re.compile(r"^table (\S+) (\S+) \{", re.MULTILINE)
_CHAIN = re.compile(r"^\s*chain (\S+) \{", re.MULTILINE)
_FIREWALLD_CHAIN = re.compile(r"^(INPUT_direct|FORWARD_direct|(IN|FWDI|FWDO|FWD)_[A-Za-z0-9_-]+)$")

BESIDE = "beside"  # Berth's table works next to it
REFUSE = "refuse"  # Berth will not apply while it is active
INFO = "info"  # not a firewall manager in the way, only worth knowing


@dataclass(frozen=True)
class Neighbour:
    """A firewall manager found in the ruleset and what Berth does about it."""

    name: str
    decision: str
    explanation: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "decision": self.decision, "explanation": self.explanation}


UFW = Neighbour(
    "ufw",
    BESIDE,
    "ufw is active: Berth works beside it; a port is reachable only when both ufw and "
    "Berth allow it (ufw cannot open what Berth closes, nor the reverse)",
)
FIREWALLD = Neighbour(
    "firewalld",
    REFUSE,
    "Berth will not run a second firewall beside firewalld, which may flush other tables "
    "on start or reload and so silently reopen Docker's ports; stop and disable firewalld "
    "(systemctl disable --now firewalld) or keep firewall.enabled = false",
)
DOCKER = Neighbour(
    "docker",
    INFO,
    "Docker's iptables chains are present; Berth's forward chain filters beside them and "
    "never edits them",
)


def detect(ruleset: str) -> list[Neighbour]:
    """The firewall managers whose rules are loaded in `ruleset` (`nft list ruleset`)."""
    tables = {name for _, name in _TABLE.findall(ruleset)}
    chains = set(_CHAIN.findall(ruleset))
    found = []
    if any(c.startswith(("ufw-", "ufw6-")) for c in chains):
        found.append(UFW)
    if "firewalld" in tables or any(_FIREWALLD_CHAIN.match(c) for c in chains):
        found.append(FIREWALLD)
    if "DOCKER" in chains or "DOCKER-USER" in chains:
        found.append(DOCKER)
    return found


def refuse_if_unsafe(neighbours: list[Neighbour]) -> None:
    for neighbour in neighbours:
        if neighbour.decision == REFUSE:
            raise FirewallConflict(neighbour.name, neighbour.explanation)
