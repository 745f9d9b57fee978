"""The `doctor` verb: every check of agent.doctor, printed one per line with its fix;
exit status 1 when any check fails."""

from __future__ import annotations

import argparse
import os
from typing import Any

from agent.cli.client import ControlClient, ResponseError
from agent.cli.registry import JSON, Context, Verb
from agent.config import load_config
from agent.doctor.checkup import NeedsAdminKey, checkup
from agent.doctor.findings import render
from agent.proxy.probe import MOST_AT_ONCE, Challenge


class ApiFacts:
    """AgentFacts from the control API."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def apps(self) -> list[dict[str, Any]]:
        return list(self.client.call("GET", "/apps"))

    def certificates(self) -> list[dict[str, Any]]:
        return list(self._admin_only("/certs")["certificates"])

    def firewall(self) -> dict[str, Any]:
        return dict(self._admin_only("/firewall"))

    def probe(self) -> dict[str, Any]:
        return dict(self.client.call("GET", "/doctor/probe"))

    def challenges(self, count: int) -> list[Challenge]:
        found: list[Challenge] = []
        while len(found) < count:  # the API issues at most MOST_AT_ONCE per call
            ask = str(min(count - len(found), MOST_AT_ONCE))
            issued = self.client.call("GET", "/doctor/challenges", query={"count": ask})
            found += [Challenge(str(c["nonce"]), str(c["answer"])) for c in issued["challenges"]]
        return found

    def _admin_only(self, path: str) -> Any:
        """GET `path`, which an app key is refused (403): that refusal is NeedsAdminKey."""
        try:
            return self.client.call("GET", path)
        except ResponseError as exc:
            if exc.status == 403:
                raise NeedsAdminKey(str(exc)) from None
            raise


def doctor(ctx: Context, args: argparse.Namespace) -> int:
    config = load_config(environ=ctx.environ or os.environ)
    found = checkup(config, ApiFacts(ctx.client))
    if args.json:
        ctx.json([vars(f) for f in found])
    else:
        ctx.out.write(render(found))
    return 1 if any(f.level == "fail" for f in found) else 0


VERBS = [
    Verb("doctor", "check this server: Docker, disk, memory, clock, DNS of app domains, "
         "ports, firewall, certificates, ACME and registries reachable, agent restarts",
         doctor, [JSON]),
]
