"""What a pushing user sees: `-----> ` step headings with durations, indented detail.

This is a deliberate stream, separate from the agent's log: lines go to a sink (the
push's response stream) and are kept for the release's stored build log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.deploy.certificates import CertificateStates, https_pending
from agent.releases import Release

HEADING = "-----> "
INDENT = "       "

Sink = Callable[[str], None]


class DeployOutput:
    """Formats and forwards a deploy's lines; remembers them for the build log."""

    def __init__(
        self, sink: Sink | None = None, *, on_settled: Callable[[Any], None] | None = None
    ) -> None:
        self._sinks: list[Sink] = [sink] if sink else []
        self._on_settled = on_settled
        self._lines: list[str] = []
        self._flushed = 0
        self._step: tuple[str, float] | None = None

    def attach(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def _send(self, line: str) -> None:
        self._lines.append(line)
        for sink in self._sinks:
            sink(line)

    def step(self, title: str) -> None:
        """Start a step; the previous one gets its duration."""
        self.end_step()
        self._step = (title, time.monotonic())
        self._send(HEADING + title)

    def end_step(self) -> None:
        if self._step is not None:
            title, started = self._step
            elapsed = time.monotonic() - started
            if elapsed >= 0.05:
                self._send(f"{INDENT}({title.split(' ', 1)[0].lower()} took {elapsed:.1f} s)")
            self._step = None

    def heading(self, text: str) -> None:
        """A heading that is not a timed step (the final URL, a notice)."""
        self.end_step()
        self._send(HEADING + text)

    def raw(self, line: str) -> None:
        """A line formatted by its producer (the builder writes its own headings)."""
        self._send(line)

    def detail(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._send(INDENT + line)

    def settle(self, result: Any) -> None:
        """The outcome is known and final; what follows (stopping drained instances) is
        cleanup the caller need not wait for. Its lines still reach the build log."""
        self.end_step()
        if self._on_settled is not None:
            self._on_settled(result)
            self._on_settled = None
            self._sinks.clear()

    def nested(self) -> DeployOutput:
        """An output for a release run inside a longer operation (an add-on's variable
        set or unset): its lines come here, and its settling ends nothing, since the
        operation's own work still follows."""
        return DeployOutput(self._send)

    def take_unflushed(self) -> str:
        """Lines not yet handed to the build log, as text."""
        fresh = self._lines[self._flushed:]
        self._flushed = len(self._lines)
        return "".join(line + "\n" for line in fresh)


def announce_live(
    out: DeployOutput, app: str, release: Release, formation: Mapping[str, int],
    hosts: Sequence[str], tls: frozenset[str], certificates: CertificateStates | None = None,
) -> None:
    """Tell the pusher the release is live: idle process types, then where it answers
    (https for the hosts in `tls`, and why the others are not yet), or how to give it a
    domain."""
    idle = [p for p in sorted(release.processes) if formation.get(p, 0) == 0]
    for process in idle:
        out.heading(f"{process} is scaled to 0: berth ps:scale {app} {process}=1 to run it")
    if not hosts:
        out.heading(f"{app} {release.version} is live, but has no domain: "
                    f"berth domains:add {app} DOMAIN (or set deploy.domain in berth.toml)")
        return
    urls = [f"{'https' if h in tls else 'http'}://{h}" for h in hosts]
    out.step(f"{app} {release.version} is live: {' '.join(urls)}")
    out.end_step()
    states = certificates.status(app) if certificates is not None else ()
    for host in (h for h in hosts if h not in tls and certificates is not None):
        out.detail(f"HTTPS pending for {host}: {https_pending(states, host)}, "
                   f"see `berth certs {app}`")
