"""The firewall service the agent's control API and the CLI call: plan, apply, confirm,
disable, status.

It owns the only state the firewall has in the agent process: a change waiting for
confirmation (with its asyncio revert timer and the table to go back to) and the listing
of the table as Berth last loaded it. Everything else is read from the kernel each time.

Rules it keeps:
- Nothing is applied before the settings, the SSH ports and the neighbours are checked;
  the kernel gets one `nft -f` transaction that touches only `table inet berth`.
- The SSH ports in use are always let in (see `agent.firewall.sshd`).
- `apply(confirm_within=N)` reverts to the table that was there before (or to none)
  unless `confirm()` arrives within N seconds. Successive unconfirmed applies revert to
  the last confirmed state. `aclose()` (agent shutdown) reverts an unconfirmed change.
- Re-applying what is loaded changes nothing and says so.
- The ruleset saved for boot (`agent.firewall.bootfile`) is the last change that stands:
  written at each apply without `confirm_within` (a no-op one included, so a missing or
  stale file is put right) and at `confirm()`, never for a change that may still revert;
  removed by `disable()` and by `forget_boot()` (the agent started with the firewall off).
  Its SSH ports are the plan's, so the next boot lets in what the last apply let in.
- An sshd moved to another port is followed (`follow_sshd`, every
  `firewall.sshd_check_interval` while the firewall is on): its new ports are added to the
  loaded table and to the saved ruleset, none taken away, so neither a new SSH connection
  nor the next boot is shut out, even if the agent does not start again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from agent.firewall import coexist
from agent.firewall.bootfile import BootRuleset
from agent.firewall.errors import FirewallError, NothingToConfirm
from agent.firewall.nft import NftRunner, read_sshd_ports
from agent.firewall.policy import OPEN, Policy, Verdict
from agent.firewall.render import (
    build_plan,
    remove_transaction,
    replace_transaction,
    table_digest,
    table_ssh_ports,
)
from agent.firewall.results import ApplyResult, FirewallPlan, FirewallStatus, SocketReach
from agent.firewall.settings import FirewallSettings
from agent.firewall.sockets import ListeningSocket, merge, parse_dnat, parse_ss
from agent.firewall.sshd import SshPorts, combine

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """An applied change waiting for confirmation."""

    previous: str | None  # listing of the table to go back to; None: no table
    text: str  # the transaction applied, saved for boot once confirmed
    applied_at: float
    deadline: float  # wall clock, for people
    task: asyncio.Task[None]


class FirewallService:
    def __init__(self, settings: FirewallSettings, runner: NftRunner | None = None) -> None:
        self.settings = settings
        self.runner = runner or NftRunner.from_settings(settings)
        self.boot = BootRuleset(settings.boot_file())
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._applied_listing: str | None = None
        self._last_revert: str | None = None

    async def plan(self, ssh_connection: str | None) -> FirewallPlan:
        """What `apply` would do; nothing is changed."""
        return await self._plan(ssh_connection, (), await self.runner.list_ruleset())

    async def apply(
        self, *, ssh_connection: str | None, confirm_within: float | None
    ) -> ApplyResult:
        if confirm_within is not None and not confirm_within > 0:
            raise FirewallError(f"confirm within {confirm_within:g}s: must be above 0 seconds")
        async with self._lock:
            plan = await self.plan(ssh_connection)
            coexist.refuse_if_unsafe(list(plan.neighbours))
            notes = _apply_notes(plan)
            live = await self.runner.list_table()
            edited = self._edited_outside(live)
            if table_digest(live) == plan.digest and not edited:
                if self._pending is None:
                    notes += await self._save_boot(plan.text)
                return self._unchanged(plan, notes)
            if edited:
                notes.append("Berth's table had been edited outside Berth; replaced it")
            previous = self._pending.previous if self._pending else live
            await self.runner.load(plan.text)
            self._applied_listing = await self.runner.list_table()
            log.info("firewall applied digest=%s netns=%s", plan.digest, self.settings.netns)
            kept = await self._drop_pending()
            if kept:
                notes.append("the earlier change that waited for confirmation is replaced")
            if confirm_within is None:
                notes += await self._save_boot(plan.text)
                return ApplyResult(True, _applied_message(plan), plan.digest, None, tuple(notes))
            return self._start_pending(plan, previous, confirm_within, notes)

    async def confirm(self) -> str:
        async with self._lock:
            if self._pending is None:
                raise NothingToConfirm(
                    self._last_revert or "no firewall change is waiting for confirmation"
                )
            text = self._pending.text
            await self._drop_pending()
            log.info("firewall change confirmed netns=%s", self.settings.netns)
            notes = await self._save_boot(text)
            return " ".join(["Firewall change confirmed: it stays in place.",
                             *(f"Note: {note}." for note in notes)])

    async def disable(self) -> str:
        """Remove Berth's table, and only it."""
        async with self._lock:
            await self._drop_pending()
            live = await self.runner.list_table()
            await self.runner.load(remove_transaction())
            self._applied_listing = None
            log.info("firewall disabled netns=%s", self.settings.netns)
            problem = await self.boot.remove()
            tail = f" Note: {problem}." if problem else ""
            if live is None:
                return f"Berth's firewall was not active: nothing to remove.{tail}"
            return f"Berth's firewall table removed; other tables were left untouched.{tail}"

    async def start(self) -> None:
        """At agent start: apply the table, or (firewall off) save none for the next boot."""
        if not self.settings.enabled:
            await self.forget_boot()
            return
        result = await self.apply(ssh_connection=None, confirm_within=None)
        log.info("firewall: %s", result.message)

    async def forget_boot(self) -> None:
        """The agent starts with the firewall off: no table is to be loaded at the next boot."""
        problem = await self.boot.remove()
        if problem:
            log.warning("firewall off, but %s", problem)

    async def follow_sshd(self) -> ApplyResult | None:
        """Add the ports sshd listens on now to the loaded table (and the saved ruleset)
        when it misses some; None when nothing was to do: no table of Berth's loaded, a
        change waiting for confirmation, sshd's ports unreadable or all let in already."""
        async with self._lock:
            live = await self.runner.list_table()
            if self._pending is not None or table_digest(live) is None:
                return None
            loaded = table_ssh_ports(live)
            ports, _ = await read_sshd_ports(self.settings.sshd_command, self.runner)
            if ports is None or set(ports) <= set(loaded):
                return None
            plan = await self._plan(None, loaded, await self.runner.list_ruleset())
            coexist.refuse_if_unsafe(list(plan.neighbours))
            await self.runner.load(plan.text)
            self._applied_listing = await self.runner.list_table()
            log.info("firewall follows sshd ports=%s netns=%s", ports, self.settings.netns)
            notes = await self._save_boot(plan.text)
            return ApplyResult(True, _applied_message(plan), plan.digest, None, tuple(notes))

    async def follow_sshd_periodically(self) -> None:
        """`follow_sshd` every `sshd_check_interval` seconds (a task of the agent)."""
        while True:
            await asyncio.sleep(self.settings.sshd_check_interval)
            try:
                await self.follow_sshd()
            except Exception:  # task boundary: the next round tries again
                log.exception("following sshd's ports failed netns=%s", self.settings.netns)

    async def status(self, *, ssh_connection: str | None = None) -> FirewallStatus:
        """What is loaded and what it lets reach the host's listening sockets.

        SSH ports the loaded table already lets in (say, from the connection it was
        applied over) count as configured, so they neither show as closed nor make the
        table look out of date.
        """
        live = await self.runner.list_table()
        ruleset = await self.runner.list_ruleset()
        plan = await self._plan(ssh_connection, table_ssh_ports(live), ruleset)
        listening = parse_ss(await self.runner.listening_sockets())
        sockets = merge(listening, parse_dnat(ruleset))
        active = live is not None
        live_digest = table_digest(live)
        notes = list(plan.ssh.notes)
        if active and live_digest != plan.digest:
            notes.append("verdicts are for the configuration, not the table loaded now")
        reaches = tuple(SocketReach(s, _judge(plan.policy, s, active)) for s in sockets)
        pending = self._pending
        saved = await self.boot.read()
        return FirewallStatus(
            enabled=self.settings.enabled,
            netns=self.settings.netns,
            active=active,
            live_digest=live_digest,
            config_digest=plan.digest,
            allowed=tuple(plan.policy.allowances()),
            sockets=reaches,
            neighbours=plan.neighbours,
            pending_confirm_until=pending.deadline if pending else None,
            last_revert=self._last_revert,
            notes=tuple(notes),
            boot_ruleset=str(self.boot.path) if self.boot.path else None,
            boot_saved=saved is not None,
            boot_digest=table_digest(saved),
        )

    async def aclose(self) -> None:
        """Agent shutdown: an unconfirmed change is reverted now rather than left behind."""
        async with self._lock:
            pending = self._pending
            if pending is None:
                return
            await self._drop_pending()
            await self._restore(pending, "the agent stopped before it was confirmed")

    # -- internals ---------------------------------------------------------------------

    async def _plan(
        self, ssh_connection: str | None, loaded_ssh: tuple[int, ...], ruleset: str
    ) -> FirewallPlan:
        ssh = await self._ssh_ports(ssh_connection)
        ssh = ssh.adding(loaded_ssh, "loaded table")
        neighbours = coexist.detect(ruleset)
        return build_plan(self.settings, ssh, neighbours)

    async def _ssh_ports(self, ssh_connection: str | None) -> SshPorts:
        ports, problem = await read_sshd_ports(self.settings.sshd_command, self.runner)
        return combine(
            configured=self.settings.ssh_ports,
            sshd_ports=ports,
            sshd_problem=problem,
            ssh_connection=ssh_connection,
            last_known=() if ports is not None else await self._last_ssh_ports(),
        )

    async def _last_ssh_ports(self) -> tuple[int, ...]:
        """The SSH ports the loaded table and the ruleset saved for boot let in."""
        loaded = table_ssh_ports(await self.runner.list_table())
        saved = table_ssh_ports(await self.boot.read())
        return tuple(sorted({*loaded, *saved}))

    async def _save_boot(self, text: str) -> list[str]:
        """Save `text` as the boot ruleset; the problem as a note, if any."""
        problem = await self.boot.save(text)
        if problem:
            return [f"{problem}: the next boot loads no up-to-date table"]
        if self.boot.path is not None and not self.settings.enabled:
            return [(f"firewall.enabled = false: the agent's next start removes {self.boot.path}, "
                     "so this table is not loaded after a reboot (set it to true to keep it)")]
        return []

    def _edited_outside(self, live: str | None) -> bool:
        """Whether the loaded table carries our digest yet differs from what we loaded."""
        known = self._applied_listing
        if known is None or live is None or table_digest(known) != table_digest(live):
            return False
        return known != live

    def _unchanged(self, plan: FirewallPlan, notes: list[str]) -> ApplyResult:
        message = f"Firewall unchanged: the loaded table already matches (sha256:{plan.digest})."
        deadline = self._pending.deadline if self._pending else None
        if deadline is not None:
            notes.append(f"still waiting for confirmation until {_clock(deadline)}")
        return ApplyResult(False, message, plan.digest, deadline, tuple(notes))

    def _start_pending(
        self, plan: FirewallPlan, previous: str | None, within: float, notes: list[str]
    ) -> ApplyResult:
        now = time.time()
        task = asyncio.create_task(self._revert_after(within), name="berth-firewall-revert")
        self._pending = _Pending(previous, plan.text, now, now + within, task)
        self._last_revert = None
        message = (
            f"{_applied_message(plan)} It reverts at {_clock(now + within)} unless "
            f"`berth firewall:confirm` arrives within {within:g}s."
        )
        return ApplyResult(True, message, plan.digest, now + within, tuple(notes))

    async def _drop_pending(self) -> bool:
        """Cancel the revert timer, if any; True if there was one. Caller holds the lock."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        pending.task.cancel()
        await asyncio.wait([pending.task])
        return True

    async def _revert_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            pending, self._pending = self._pending, None
            if pending is None:
                return
            try:
                await self._restore(pending, "not confirmed in time")
            except Exception as exc:  # task boundary: nobody awaits this task
                log.exception("firewall revert failed netns=%s", self.settings.netns)
                self._last_revert = f"Reverting the unconfirmed firewall change FAILED: {exc}"

    async def _restore(self, pending: _Pending, why: str) -> None:
        if pending.previous is None:
            await self.runner.load(remove_transaction())
        else:
            await self.runner.load(replace_transaction(pending.previous))
        self._applied_listing = await self.runner.list_table()
        self._last_revert = (
            f"The firewall change applied at {_clock(pending.applied_at)} was reverted at "
            f"{_clock(time.time())}: {why}."
        )
        log.warning("firewall change reverted why=%r netns=%s", why, self.settings.netns)


def _judge(policy: Policy, socket: ListeningSocket, active: bool) -> Verdict:
    if not active and not socket.loopback:
        return Verdict(OPEN, "Berth's firewall is not active")
    return policy.judge(
        socket.protocol, socket.port, loopback=socket.loopback, container=socket.container
    )


def _apply_notes(plan: FirewallPlan) -> list[str]:
    notes = list(plan.ssh.notes)
    notes += [n.explanation for n in plan.neighbours if n.decision == coexist.BESIDE]
    return notes


def _applied_message(plan: FirewallPlan) -> str:
    ports = ", ".join(str(p) for p in plan.ssh.ports)
    return f"Firewall applied (sha256:{plan.digest}); SSH stays open on {ports}."


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))
