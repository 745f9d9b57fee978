"""The registries check of `berth doctor`: can builds reach the package registries?

Asked where builds run (agent.doctor.buildprobe: a container of the build's base image, on
the build's network, trusting build.ca_bundle as builds do). For a registry the container
cannot reach, this host is asked too: a host that gets through points at Docker's DNS,
forwarding or MTU rather than at the server's network, and a host that trusts a
certificate builds do not names the CA bundle to give builds. When no probe container
can run (no engine, the base image not pulled yet), the host's view stands in, after a
warning that builds themselves were not checked.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agent.build.ca import read_bundle
from agent.build.errors import BuildError
from agent.config import Config
from agent.doctor import buildprobe, findings, tlsreach
from agent.doctor.buildprobe import Outcome
from agent.doctor.findings import Finding

REGISTRIES = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")
TIMEOUT = 5.0  # each connection, in the container and on the host
DEADLINE = 30.0  # the probe container's whole run, start to exit
HOST_DEADLINE = 15.0  # the host's probes, all at once


def check(config: Config, targets: Sequence[str] = REGISTRIES,
          deadline: float = DEADLINE) -> list[Finding]:
    """One finding per target (`host` or `host:port`), judged from a build container."""
    try:
        bundle = read_bundle(config.build.ca_bundle) if config.build.ca_bundle else None
    except BuildError as exc:
        return [Finding("fail", "registries", str(exc),
                        "point build.ca_bundle at a readable PEM file: builds fail until then")]
    try:
        seen = buildprobe.run_probe(config.docker.url, config.build, bundle, targets,
                                    TIMEOUT, deadline)
    except buildprobe.BuildContainerUnavailable as exc:
        return _from_host_only(config.build.ca_bundle, targets, exc)
    host = on_host([o.target for o in seen if o.kind != "ok"], config.build.ca_bundle)
    bundle_here = "" if config.build.ca_bundle else _host_bundle()
    return [findings.registry(o.target, o.kind, o.error, _kind(host.get(o.target)),
                              host_bundle=bundle_here)
            for o in seen]


def _host_bundle() -> str:
    """The CA bundle file this host's TLS clients trust ("" when they use a directory)."""
    cafile = ssl.get_default_verify_paths().cafile
    return str(Path(cafile).resolve()) if cafile else ""


def _kind(outcome: Outcome | None) -> str | None:
    return None if outcome is None else outcome.kind



def _from_host_only(ca_bundle: Path | None, targets: Sequence[str],
                    why: buildprobe.BuildContainerUnavailable) -> list[Finding]:
    warning = Finding("warn", "registries", f"not checked from a build container: {why}",
                      why.fix)
    host = on_host(targets, ca_bundle)
    return [warning, *(findings.registry(t, host[t].kind, host[t].error, None,
                                         where="this host") for t in targets)]


def on_host(targets: Sequence[str], ca_bundle: Path | None) -> dict[str, Outcome]:
    """How this host reaches each target, probed at once; one that does not finish in
    time (name resolution has no socket timeout of its own) counts as timed out."""
    said: dict[str, Outcome] = {}
    lock = threading.Lock()

    def run(target: str) -> None:
        outcome = tlsreach.probe(target, TIMEOUT, str(ca_bundle) if ca_bundle else "")
        with lock:
            said[target] = Outcome(target, outcome["kind"], outcome["error"])

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    end = time.monotonic() + HOST_DEADLINE
    for thread in threads:
        thread.join(max(end - time.monotonic(), 0.0))
    with lock:
        return {t: said.get(t) or Outcome(t, "timeout", f"no answer within {HOST_DEADLINE:g} s")
                for t in targets}
