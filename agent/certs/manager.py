"""The certificate manager: the service the agent runs for automatic HTTPS.

It holds the desired state (which app serves which domains, ACME on or off, custom
certificates), keeps the proxy's certificate store (the sink) in line with it, and runs
one scan loop that starts an attempt for every domain whose plan (`policy.plan`) says
issue or renew. Attempts run as tasks, at most `max_parallel_orders` at once and one per
domain; serving never waits for them. A failed attempt records the error and the backoff
in the database and the current certificate keeps being served.

Boot: `start()` serves what is stored (no re-issuance), then scans. The deploy side calls
`set_app_domains` whenever an app's domains change; the control API calls `renew`,
`add_custom`, `remove` and `status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from agent.certs import policy, preflight
from agent.certs.acme_client import AcmeIssuer
from agent.certs.attemptlog import AttemptLog
from agent.certs.errors import (
    AcmeFailure,
    AcmeOff,
    CertificateError,
    DryRunFailed,
    NamesNotCovered,
    OrderFailed,
)
from agent.certs.interfaces import CertificateSink, ChallengeResponder, Issuer, Resolver, Sleeper
from agent.certs.keys import (
    check_pair,
    generate_key,
    key_to_pem,
    make_csr,
    missing_names,
)
from agent.certs.serving import Held, Serving
from agent.certs.settings import AcmeSettings
from agent.certs.state import CertState
from agent.certs.status import CertStatus, describe
from agent.certs.storage import CertStore, KeyPair
from agent.errors import Conflict, NotFound
from agent.names import check_app, check_domain
from agent.store.db import Database

log = logging.getLogger(__name__)


async def wake_or_timeout(wake: asyncio.Event, delay: float) -> None:
    """The scan loop's sleep: until `wake` is set or `delay` seconds have passed."""
    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancel that arrives
    # as the event fires, and stop() would wait forever.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await wake.wait()


class CertificateManager:
    def __init__(
        self,
        settings: AcmeSettings,
        state_dir: Path,
        db: Database,
        challenges: ChallengeResponder,
        sink: CertificateSink,
        *,
        resolver: Resolver = preflight.system_resolver,
        issuer: Issuer | None = None,
        clock: Callable[[], float] = time.time,
        sleeper: Sleeper = wake_or_timeout,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.directory = settings.active_directory
        self._store = CertStore(state_dir)
        self._state = CertState(db)
        self._challenges = challenges
        self._resolver = resolver
        self._issuer: Issuer = issuer or AcmeIssuer(settings, self._store)
        self._clock = clock
        self._sleeper = sleeper
        self._rand = rand
        self._attempt_log = AttemptLog(self._state, settings, clock)
        self._serving = Serving(sink)
        self._desired = self._serving.desired  # domain -> (app, acme on)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # domain -> attempt in flight
        self._ari_tasks: dict[str, asyncio.Task[None]] = {}
        self._orders = asyncio.Semaphore(settings.max_parallel_orders)
        self._wake = asyncio.Event()
        self._scan_task: asyncio.Task[None] | None = None

    # Lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the stored certificates (nothing is re-issued), then start scanning."""
        self._desired.update(self._state.desired())
        for app in self._state.custom():
            pair = self._store.load_custom(app)
            held = Held.parse(pair, f"custom certificate of {app}") if pair else None
            if held is not None:
                self._serving.custom[app] = held
        for domain in self._desired:
            self._load_acme(domain)
        self._sync(self._desired)
        log.info("certificates loaded domains=%d served=%d directory=%s",
                 len(self._desired), self._serving.served_count(), self.directory)
        self._scan_task = asyncio.create_task(self._scan_loop(), name="certs-scan")

    async def stop(self) -> None:
        tasks = [t for t in (self._scan_task, *self._tasks.values(), *self._ari_tasks.values())
                 if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._scan_task = None

    # Desired state from the deploy side ---------------------------------------------
    def set_app_domains(self, app: str, domains: Sequence[str], *, acme: bool = True) -> None:
        """The app's complete list of domains; new names get certificates in the background."""
        check_app(app)
        wanted = tuple(dict.fromkeys(check_domain(d) for d in domains))
        for domain in wanted:
            owner = self._desired.get(domain, (app, acme))[0]
            if owner != app:
                raise Conflict(f"domain {domain!r} belongs to app {owner!r}")
        previous = {d for d, (a, _) in self._desired.items() if a == app}
        self._state.set_app_domains(app, wanted, acme)
        for domain in previous:
            del self._desired[domain]
        for domain in wanted:
            self._desired[domain] = (app, acme)
            if domain not in self._serving.acme:
                self._load_acme(domain)
        for domain in previous - set(wanted):
            self._cancel(domain)
        self._sync(previous | set(wanted))
        self._wake.set()

    def reconcile(self, apps: Mapping[str, tuple[Sequence[str], bool]]) -> None:
        """The complete desired state at boot: app -> (domains, acme on).

        Apps not listed are forgotten (their domains and custom certificate), so an app
        destroyed while the agent was down stops being served and renewed.
        """
        for app in sorted(self._serving.apps() - set(apps)):
            self.forget_app(app)
        # Shrink each app to the domains it keeps first, so a domain that moved between
        # apps while the agent was down is free before its new owner claims it.
        for app, (domains, acme) in apps.items():
            keep = [d for d, (a, _) in self._desired.items() if a == app and d in domains]
            self.set_app_domains(app, keep, acme=acme)
        for app, (domains, acme) in apps.items():
            self.set_app_domains(app, domains, acme=acme)

    def forget_app(self, app: str) -> None:
        """The app is gone: its domains and its custom certificate."""
        self.set_app_domains(app, ())
        self._state.remove_custom(app)
        self._store.remove_custom(app)
        self._serving.custom.pop(app, None)

    # Control API ---------------------------------------------------------------------
    async def renew(self, target: str, *, force: bool = False) -> list[CertStatus]:
        """Renew the app's or the domain's certificates that are due (all with `force`)."""
        domains = self._target(target)
        eligible = [d for d in domains if self._serving.acme_applies(d)]
        if not eligible:
            raise AcmeOff(target)
        if not self.settings.enabled:
            raise AcmeOff("this server (acme.enabled is false)")
        now = self._clock()
        waits: list[asyncio.Task[None]] = []
        for domain in eligible:
            task = self._tasks.get(domain)
            if task is None:
                step = self._plan(domain, now, manual=True, force=force)
                if step.action == "wait":
                    continue
                task = self._start_attempt(domain, step)
            waits.append(task)
        if waits:
            await asyncio.gather(*(asyncio.shield(t) for t in waits), return_exceptions=True)
        return [self._status_of(d) for d in domains if d in self._desired]

    async def add_custom(self, app: str, cert_pem: bytes, key_pem: bytes) -> CertStatus:
        """Serve the user's own certificate for the app's domains instead of ACME's."""
        check_app(app)
        info = check_pair(cert_pem, key_pem)
        domains = self._serving.domains_of(app)
        if not domains:
            raise CertificateError(f"app {app!r} has no domains; add one with domains:add first")
        missing = missing_names(info, domains)
        if missing:
            raise NamesNotCovered(app, missing)
        now = self._clock()
        if info.not_after <= now:
            raise CertificateError("the certificate has expired")
        held = Held(KeyPair(cert_pem, key_pem), info)
        await asyncio.to_thread(self._store.save_custom, app, held.pair)
        self._state.set_custom(app, info.names, info.not_after, now)
        self._serving.custom[app] = held
        self._sync(domains)
        log.info("custom certificate added app=%s names=%s", app, ",".join(info.names))
        return self._status_of(domains[0])

    async def remove(self, app: str) -> None:
        """Remove the app's custom certificate; its domains go back to ACME (if on)."""
        check_app(app)
        removed_row = self._state.remove_custom(app)
        removed_file = await asyncio.to_thread(self._store.remove_custom, app)
        if not (removed_row or removed_file):
            raise NotFound("custom certificate of app", app)
        self._serving.custom.pop(app, None)
        self._sync(self._serving.domains_of(app))
        self._wake.set()

    def status(self, app: str | None = None) -> list[CertStatus]:
        domains = sorted(self._desired.items(), key=lambda item: (item[1][0], item[0]))
        return [self._status_of(d) for d, (a, _) in domains if app is None or a == app]

    def orders_placed(self, domain: str, directory: str | None = None) -> int:
        """How many orders were placed for `domain` (the persisted counter)."""
        return self._state.attempts(directory or self.directory, domain).orders

    # Serving -------------------------------------------------------------------------
    def _sync(self, domains: Iterable[str]) -> None:
        self._serving.sync(domains, self._clock())

    def _load_acme(self, domain: str) -> None:
        pair = self._store.load_acme(self.directory, domain)
        held = Held.parse(pair, domain) if pair is not None else None
        if held is not None:
            self._serving.acme[domain] = held

    # Scanning ------------------------------------------------------------------------
    def _plan(self, domain: str, now: float, *, manual: bool = False,
              force: bool = False) -> policy.Plan:
        record = self._state.attempts(self.directory, domain)
        held = self._serving.acme.get(domain)
        return policy.plan(held.times if held else None, record.attempts, now, self.settings,
                           ari_time=record.ari_time, manual=manual, force=force)

    async def _scan_loop(self) -> None:
        next_scan = self._clock()
        while True:
            self._wake.clear()
            now = self._clock()
            if now >= next_scan:
                next_scan = now + policy.scan_delay(self.settings, self._rand())
            try:
                wake_times = self._scan(now)
            except Exception:  # task boundary: log, keep the loop (and its sleep) alive
                log.exception("certificate scan failed")
                wake_times = []
            await self._sleeper(self._wake, policy.sleep_until(next_scan, wake_times, now))

    def _scan(self, now: float) -> list[float]:
        """Start the attempts that are due; return when to look again."""
        if not self.settings.enabled:
            return []
        wake_times: list[float] = []
        for domain in sorted(self._desired):
            if not self._serving.acme_applies(domain) or domain in self._tasks:
                continue
            step = self._plan(domain, now)
            if step.action == "wait":
                wake_times.append(step.at)
                self._maybe_check_ari(domain, now)
            else:
                self._start_attempt(domain, step)
        return wake_times

    def _start_attempt(self, domain: str, step: policy.Plan) -> asyncio.Task[None]:
        log.info("certificate attempt domain=%s action=%s reason=%s", domain, step.action,
                 step.reason)
        task = asyncio.create_task(self._attempt(domain), name=f"certs-{domain}")
        self._tasks[domain] = task
        task.add_done_callback(partial(self._attempt_done, domain))
        return task

    def _attempt_done(self, domain: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(domain) is task:
            del self._tasks[domain]
        self._wake.set()

    def _cancel(self, domain: str) -> None:
        task = self._tasks.pop(domain, None)
        if task is not None:
            task.cancel()

    # One attempt ---------------------------------------------------------------------
    async def _attempt(self, domain: str) -> None:
        try:
            async with self._orders:
                record = self._state.attempts(self.directory, domain)
                if self.settings.preflight:
                    await preflight.check(domain, self._resolver, self.settings.public_addresses,
                                          self.settings.preflight_timeout)
                dry_run = self.settings.dry_run_directory
                if record.attempts.failures > 0 and dry_run is not None:
                    try:
                        await self._obtain(dry_run, domain)
                    except AcmeFailure as failure:
                        raise DryRunFailed(domain, failure) from failure
                held = await self._obtain(self.directory, domain)
        except AcmeFailure as failure:
            self._attempt_log.failed(self.directory, domain, failure,
                                     self._serving.acme.get(domain))
            return
        except Exception as exc:  # task boundary: an unexpected error still backs off
            log.exception("certificate attempt crashed domain=%s", domain)
            self._attempt_log.failed(self.directory, domain,
                                     OrderFailed(domain, f"internal error: {exc!r}"),
                                     self._serving.acme.get(domain))
            return
        await asyncio.to_thread(self._store.save_acme, self.directory, domain, held.pair)
        self._serving.acme[domain] = held
        self._attempt_log.succeeded(self.directory, domain, held)
        if self._tasks.get(domain) is asyncio.current_task():
            del self._tasks[domain]  # done: status says valid as soon as it is served
        self._sync([domain])

    async def _obtain(self, directory: str, domain: str) -> Held:
        key = await asyncio.to_thread(generate_key, self.settings.key_type)
        key_pem = key_to_pem(key)
        chain = await self._issuer.issue(
            directory, domain, make_csr(domain, key), self._challenges,
            on_order_placed=lambda: self._attempt_log.order_placed(directory, domain),
        )
        try:
            info = check_pair(chain, key_pem)
        except CertificateError as exc:
            raise OrderFailed(domain, f"the CA's certificate is unusable: {exc}") from exc
        if not info.covers(domain):
            raise OrderFailed(domain, f"the CA's certificate names {info.names}, not {domain}")
        return Held(KeyPair(chain, key_pem), info)

    # ARI -----------------------------------------------------------------------------
    def _maybe_check_ari(self, domain: str, now: float) -> None:
        if not self.settings.ari or domain in self._ari_tasks or domain not in self._serving.acme:
            return
        record = self._state.attempts(self.directory, domain)
        if record.ari_next_check is not None and record.ari_next_check > now:
            return
        task = asyncio.create_task(self._check_ari(domain), name=f"certs-ari-{domain}")
        self._ari_tasks[domain] = task
        task.add_done_callback(partial(self._ari_done, domain))

    def _ari_done(self, domain: str, task: asyncio.Task[None]) -> None:
        if self._ari_tasks.get(domain) is task:
            del self._ari_tasks[domain]

    async def _check_ari(self, domain: str) -> None:
        held = self._serving.acme[domain]
        try:
            info = await self._issuer.renewal_info(self.directory, held.pair.chain_pem)
        except AcmeFailure as failure:
            log.info("ARI check failed domain=%s error=%s", domain, failure)
            info = None
        record = self._state.attempts(self.directory, domain)
        if info is None:
            record = replace(record, ari_next_check=self._clock() + self.settings.backoff_max)
        else:
            record = replace(record, ari_time=info.renew_at, ari_next_check=info.next_check)
        self._state.save_attempts(self.directory, domain, record)
        if info is not None and info.renew_at is not None:
            self._wake.set()

    # Status --------------------------------------------------------------------------
    def _target(self, target: str) -> list[str]:
        by_app = self._serving.domains_of(target)
        if by_app:
            return by_app
        if target in self._desired:
            return [target]
        raise NotFound("app or domain with certificates", target)

    def _status_of(self, domain: str) -> CertStatus:
        app, acme = self._desired[domain]
        held = self._serving.candidate(domain)
        return describe(
            app, domain, acme=acme, cert=held.info if held else None,
            custom=held is not None and held is self._serving.custom.get(app),
            record=self._state.attempts(self.directory, domain),
            in_flight=domain in self._tasks, enabled=self.settings.enabled, now=self._clock(),
        )

