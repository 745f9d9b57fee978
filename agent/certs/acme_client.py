"""The adapter around certbot's `acme` package: accounts, HTTP-01 orders, ARI.

`acme` and `requests` block, so all of it runs in worker threads: `AcmeIssuer` (async,
what the manager calls) runs each blocking step of `_Session` through
`asyncio.to_thread` and touches the challenge responder only from the event loop, between
steps. Every request has `network_timeout`; every poll loop has the order's deadline.

Accounts: one EC P-256 key per directory URL, created once (with the configured email)
and reused. If the CA no longer knows the account (`accountDoesNotExist`, e.g. a wiped
test CA), it is registered again with the same key and the step retried once.

Library errors become `AcmeFailure` subclasses here and nowhere else: unreachable CA,
failed challenge, invalid order, timeout, and rate limiting with the CA's Retry-After
(captured from the HTTP response, which the library's error object does not keep).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import requests
from acme import challenges, client, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from agent.certs.errors import (
    AcmeFailure,
    CaUnreachable,
    ChallengeFailed,
    OrderFailed,
    OrderTimeout,
    RateLimited,
)
from agent.certs.interfaces import ChallengeResponder, RenewalInfo
from agent.certs.keys import key_to_pem, load_key
from agent.certs.settings import AcmeSettings
from agent.certs.storage import AccountRecord, CertStore

log = logging.getLogger(__name__)

USER_AGENT = "berth-acme (acme-python)"
FIRST_POLL = 0.1
ARI_DEFAULT_RECHECK = 6 * 3600.0
T = TypeVar("T")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - now, 0.0)


@dataclass(frozen=True)
class HttpChallenge:
    token: str
    key_authorization: str


@dataclass
class PendingOrder:
    """An order whose HTTP-01 challenges must be published before `finish`."""

    domain: str
    order: messages.OrderResource
    answers: list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]]
    challenges: list[HttpChallenge] = field(default_factory=list)


class _Session:
    """One directory, one account, one order at a time. Blocking; run it in a thread."""

    def __init__(self, directory: str, domain: str, settings: AcmeSettings,
                 store: CertStore, account_lock: threading.Lock) -> None:
        self.directory = directory
        self.domain = domain
        self._settings = settings
        self._store = store
        self._account_lock = account_lock
        self._last_error: requests.Response | None = None
        self._net: client.ClientNetwork | None = None
        self._client: client.ClientV2 | None = None
        self._key: JWKEC | None = None

    # Setup -------------------------------------------------------------------------
    def open(self) -> None:
        """Fetch the directory and make sure the account exists."""
        with self._errors("connecting"):
            record = self._load_or_create_key()
            self._key = JWKEC(key=load_key(record.key_pem))
            # requests takes a CA bundle path where acme's annotation says bool.
            verify = cast(bool, str(self._settings.ca_bundle) if self._settings.ca_bundle else True)
            self._net = client.ClientNetwork(
                self._key, alg=ES256, verify_ssl=verify, user_agent=USER_AGENT,
                timeout=max(1, math.ceil(self._settings.network_timeout)),
            )
            self._net.session.hooks["response"].append(self._remember)
            directory = client.ClientV2.get_directory(self.directory, self._net)
            self._client = client.ClientV2(directory, self._net)
            if record.uri is None or record.email != self._settings.email:
                self._register(record)
            else:
                self._net.account = messages.RegistrationResource(
                    uri=record.uri, body=messages.Registration())

    def close(self) -> None:
        if self._net is not None:
            self._net.session.close()

    def _load_or_create_key(self) -> AccountRecord:
        with self._account_lock:
            record = self._store.load_account(self.directory)
            if record is None:
                key_pem = key_to_pem(ec.generate_private_key(ec.SECP256R1()))
                record = AccountRecord(key_pem, None, self._settings.email)
                self._store.save_account(self.directory, record)
                log.info("created ACME account key directory=%s", self.directory)
            return record

    def _register(self, record: AccountRecord) -> None:
        """Register (or find, or update the contact of) the account for this key."""
        assert self._client is not None and self._net is not None
        email = self._settings.email or None
        body = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
        self._net.account = None
        try:
            regr = self._client.new_account(body)
        except acme_errors.ConflictError as exc:  # the key already has an account
            regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
            self._net.account = regr
            if record.email != self._settings.email:
                contact = messages.Registration.from_data(email=email)
                regr = self._client.update_registration(regr, contact)
        uri = regr.uri
        with self._account_lock:
            self._store.save_account(self.directory,
                                     AccountRecord(record.key_pem, uri, self._settings.email))
        log.info("ACME account ready directory=%s uri=%s", self.directory, uri)

    def _reregister(self) -> None:
        record = self._store.load_account(self.directory)
        assert record is not None
        log.warning("ACME account lost on the server, registering again directory=%s",
                    self.directory)
        self._register(AccountRecord(record.key_pem, None, record.email))

    def _with_account(self, step: Callable[[], T]) -> T:
        """Run a step; if the CA lost the account, register again and retry once."""
        try:
            return step()
        except messages.Error as exc:
            if exc.code != "accountDoesNotExist":
                raise
        self._reregister()
        return step()

    # Orders ------------------------------------------------------------------------
    def new_order(self, csr_pem: bytes) -> PendingOrder:
        with self._errors("creating the order"):
            return self._with_account(lambda: self._new_order(csr_pem))

    def _new_order(self, csr_pem: bytes) -> PendingOrder:
        assert self._client is not None and self._key is not None
        order = self._client.new_order(csr_pem)
        pending = PendingOrder(self.domain, order, [])
        for authzr in order.authorizations:
            status = authzr.body.status
            if status == messages.STATUS_VALID:
                continue
            if status != messages.STATUS_PENDING:
                raise OrderFailed(self.domain, f"authorization is {status}")
            challb = _http01(authzr)
            if challb is None:
                raise OrderFailed(self.domain, "the CA offered no http-01 challenge")
            response, validation = challb.chall.response_and_validation(self._key)
            pending.answers.append((challb, response))
            pending.challenges.append(HttpChallenge(challb.chall.encode("token"), validation))
        return pending

    def finish(self, pending: PendingOrder, deadline: float) -> bytes:
        """Answer the (published) challenges, wait for validation, finalize, download."""
        with self._errors("completing the order"):
            assert self._client is not None
            for challb, response in pending.answers:
                self._client.answer_challenge(challb, response)
            self._wait_for_authorizations(pending.order, deadline)
            return self._finalize(pending.order, deadline)

    def _wait_for_authorizations(self, order: messages.OrderResource, deadline: float) -> None:
        assert self._client is not None
        for authzr in order.authorizations:
            for delay in self._poll_delays(deadline, "validation"):
                authzr, _ = self._client.poll(authzr)
                if authzr.body.status != messages.STATUS_PENDING:
                    break
                time.sleep(delay)
            if authzr.body.status != messages.STATUS_VALID:
                raise ChallengeFailed(self.domain, _challenge_problem(authzr))

    def _finalize(self, order: messages.OrderResource, deadline: float) -> bytes:
        assert self._client is not None and self._net is not None
        self._begin_finalization(order)
        for delay in self._poll_delays(deadline, "finalization"):
            response = self._post_as_get(order.uri)
            body = messages.Order.from_json(response.json())
            if body.status == messages.STATUS_VALID and body.certificate is not None:
                return self._post_as_get(body.certificate).text.encode()
            if body.status == messages.STATUS_INVALID:
                raise OrderFailed(self.domain, _problem(body.error) if body.error else "invalid")
            if body.status == messages.STATUS_READY:
                self._begin_finalization(order)
            retry = parse_retry_after(response.headers.get("Retry-After"), time.time())
            time.sleep(min(max(delay, retry or 0.0), max(deadline - time.monotonic(), 0.0)))
        raise AssertionError("unreachable: _poll_delays raises at the deadline")

    def _begin_finalization(self, order: messages.OrderResource) -> None:
        assert self._client is not None
        try:
            self._client.begin_finalization(order)
        except messages.Error as exc:
            if exc.code != "orderNotReady":
                raise

    def _post_as_get(self, url: str) -> requests.Response:
        assert self._client is not None and self._net is not None
        return self._net.post(url, None, new_nonce_url=self._client.directory["newNonce"])

    def _poll_delays(self, deadline: float, stage: str) -> Iterator[float]:
        delay = FIRST_POLL
        while time.monotonic() < deadline:
            yield delay
            delay = min(delay * 1.5, self._settings.poll_interval_max)
        raise OrderTimeout(self.domain, stage, self._settings.order_timeout)

    # ARI ---------------------------------------------------------------------------
    def renewal_info(self, chain_pem: bytes) -> RenewalInfo:
        assert self._client is not None
        with self._errors("asking for renewal information"):
            try:
                renew_at, next_check = self._client.renewal_time(chain_pem)
            except acme_errors.ARIError as exc:
                log.info("ARI unavailable directory=%s error=%s", self.directory, exc)
                return RenewalInfo(None, time.time() + ARI_DEFAULT_RECHECK)
        return RenewalInfo(renew_at.timestamp() if renew_at else None, next_check.timestamp())

    # Errors ------------------------------------------------------------------------
    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code >= 400:
            self._last_error = response

    @contextmanager
    def _errors(self, stage: str) -> Iterator[None]:
        """Turn library errors into `AcmeFailure`s that say what went wrong."""
        self._last_error = None
        try:
            yield
        except AcmeFailure:
            raise
        except requests.exceptions.RequestException as exc:
            raise CaUnreachable(self.domain, self.directory, _network_problem(exc)) from exc
        except messages.Error as exc:
            self._raise_problem(exc, stage)
        except acme_errors.ValidationError as exc:
            detail = "; ".join(_challenge_problem(a) for a in exc.failed_authzrs)
            raise ChallengeFailed(self.domain, detail) from exc
        except acme_errors.TimeoutError as exc:
            raise OrderTimeout(self.domain, stage, self._settings.order_timeout) from exc
        except (acme_errors.Error, DeserializationError, ValueError, KeyError) as exc:
            raise OrderFailed(self.domain, f"{stage}: {_short(exc)}") from exc

    def _raise_problem(self, exc: messages.Error, stage: str) -> None:
        last = self._last_error
        if exc.code == "rateLimited" or (last is not None and last.status_code == 429):
            # (a requests.Response is falsy when not ok: compare with None)
            header = last.headers.get("Retry-After") if last is not None else None
            retry = parse_retry_after(header, time.time())
            raise RateLimited(self.domain, exc.detail or str(exc), retry) from exc
        raise OrderFailed(self.domain, f"{stage}: {_problem(exc)}") from exc


def _http01(authzr: messages.AuthorizationResource) -> messages.ChallengeBody | None:
    for challb in authzr.body.challenges:
        if isinstance(challb.chall, challenges.HTTP01):
            return challb
    return None


def _challenge_problem(authzr: messages.AuthorizationResource) -> str:
    for challb in authzr.body.challenges:
        if challb.error is not None:
            return _problem(challb.error)
    return f"authorization is {authzr.body.status}"


def _problem(error: messages.Error) -> str:
    code = error.code or str(error.typ).rsplit(":", 1)[-1]
    return f"{code}: {error.detail}" if error.detail else code


def _network_problem(exc: requests.exceptions.RequestException) -> str:
    """The useful end of a requests/urllib3 error chain ("connection refused", ...)."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (acme.ca_bundle?)"
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(reason if reason is not None else exc)
    return _short(text.rsplit(": ", 1)[-1] if ": " in text else text)


def _short(exc: BaseException | str) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


class AcmeIssuer:
    """The manager's `Issuer`: async, each blocking step in a worker thread."""

    def __init__(self, settings: AcmeSettings, store: CertStore) -> None:
        self._settings = settings
        self._store = store
        self._account_locks: dict[str, threading.Lock] = {}

    async def issue(
        self,
        directory: str,
        domain: str,
        csr_pem: bytes,
        challenges: ChallengeResponder,
        *,
        on_order_placed: Callable[[], None] = lambda: None,
    ) -> bytes:
        deadline = time.monotonic() + self._settings.order_timeout
        session = self._session(directory, domain)
        try:
            await asyncio.to_thread(session.open)
            pending = await asyncio.to_thread(session.new_order, csr_pem)
            on_order_placed()
            for challenge in pending.challenges:
                challenges.set(challenge.token, challenge.key_authorization)
            try:
                return await asyncio.to_thread(session.finish, pending, deadline)
            finally:
                for challenge in pending.challenges:
                    challenges.remove(challenge.token)
        finally:
            session.close()

    async def renewal_info(self, directory: str, chain_pem: bytes) -> RenewalInfo:
        session = self._session(directory, "(renewal info)")
        try:
            await asyncio.to_thread(session.open)
            return await asyncio.to_thread(session.renewal_info, chain_pem)
        finally:
            session.close()

    def _session(self, directory: str, domain: str) -> _Session:
        lock = self._account_locks.setdefault(directory, threading.Lock())
        return _Session(directory, domain, self._settings, self._store, lock)
