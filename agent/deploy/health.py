"""Health checks of new web instances, run before the route swap and outside any lock.

A probe is one HTTP/1.1 GET to the instance's published port on 127.0.0.1, sent with the
app's own domain as Host (Django's ALLOWED_HOSTS refuses an IP) and, when the app is
served over TLS, `X-Forwarded-Proto: https`. `judge` decides pass or fail from a probe's
result (pure); `wait_healthy` applies the timing: the built-in check retries until the
deadline, app.json checks follow their own attempts, timeout, wait and initialDelay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from agent.appjson import HealthCheck
from agent.errors import BerthError

MAX_BODY = 64 * 1024


class HealthCheckFailed(BerthError):
    def __init__(self, url: str, reason: str, last: ProbeResult | None) -> None:
        detail = f"health check of {url} failed: {reason}"
        if last is not None and last.status is not None and last.body:
            excerpt = last.body[:200].decode("utf-8", "replace").strip().replace("\n", " ")
            detail += f" (last body: {excerpt!r})"
        super().__init__(detail)
        self.url = url
        self.reason = reason
        self.last_status = last.status if last else None


@dataclass(frozen=True)
class ProbeResult:
    status: int | None  # None: no HTTP answer
    body: bytes = b""
    error: str = ""

    def describe(self) -> str:
        return f"status {self.status}" if self.status is not None else self.error


async def probe(
    port: int, path: str, *, host_header: str, headers: Sequence[tuple[str, str]] = (),
    timeout: float, address: str = "127.0.0.1",
) -> ProbeResult:
    """One GET; never raises for network trouble, reports it in the result."""
    try:
        return await asyncio.wait_for(
            _get(address, port, path, host_header, headers), timeout
        )
    except TimeoutError:
        return ProbeResult(None, error=f"no answer within {timeout:g} s")
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return ProbeResult(None, error=_describe_error(exc))


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before a response"
    return str(exc) or type(exc).__name__


async def _get(
    address: str, port: int, path: str, host_header: str, headers: Sequence[tuple[str, str]]
) -> ProbeResult:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}",
                 "User-Agent: berth-healthcheck", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
            return ProbeResult(None, error="not an HTTP response")
        body = await reader.read(MAX_BODY)
        return ProbeResult(int(status_line[1]), body=body)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def judge(check: HealthCheck, result: ProbeResult) -> str | None:
    """None when `result` passes `check`, else the reason it does not."""
    if result.status is None:
        return result.error
    if check.default:
        return None if result.status < 500 else f"status {result.status}"
    if not 200 <= result.status < 400:
        return f"status {result.status}"
    if check.content and check.content.encode() not in result.body:
        return f"body does not contain {check.content!r}"
    return None


DEFAULT_CHECK = HealthCheck(path="/", default=True)
FIRST_RETRY = 0.02
QUICK_ATTEMPTS = 50
# How often a failing check asks the engine whether the container still runs: an
# inspection costs milliseconds, a refused connect microseconds.
ALIVE_EVERY = 0.25


def retry_pause(attempt: int, interval: float) -> float:
    """Pause after failed attempt `attempt` of the built-in check: 20 ms for the first
    second (a refused connect costs nothing), then doubling up to `interval`, so an app
    that boots in 300 ms is live in 300 ms, not at the next second."""
    doublings = max(0, attempt - QUICK_ATTEMPTS)
    return min(interval, FIRST_RETRY * 2.0 ** doublings)

Alive = Callable[[], Awaitable[str | None]]  # None while alive, else why it is not


async def wait_healthy(
    port: int, checks: Sequence[HealthCheck], *, host_header: str,
    extra_headers: Sequence[tuple[str, str]], deadline: float, interval: float,
    alive: Alive, say: Callable[[str], None],
) -> None:
    """Pass every check against the instance on `port`, or raise HealthCheckFailed.

    `deadline` is a time.monotonic() value bounding the built-in check; `alive` lets a
    crashed container fail the check at once instead of at the deadline (asked after
    the first failed attempt, then at most every ALIVE_EVERY seconds).
    """
    asked_alive = -ALIVE_EVERY
    for check in checks or (DEFAULT_CHECK,):
        url = f"http://{host_header}{check.path}"
        last: ProbeResult | None = None
        if check.initial_delay:
            await asyncio.sleep(check.initial_delay)
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            timeout = check.timeout if not check.default else max(0.5, min(5.0, remaining))
            last = await probe(port, check.path, host_header=host_header,
                               headers=tuple(extra_headers) + check.headers, timeout=timeout)
            reason = judge(check, last)
            if reason is None:
                say(f"{check.name or check.path}: {last.describe()} (attempt {attempt})")
                break
            if time.monotonic() - asked_alive >= ALIVE_EVERY:
                asked_alive = time.monotonic()
                gone = await alive()
                if gone is not None:
                    raise HealthCheckFailed(url, gone, last)
            if check.default:
                pause = retry_pause(attempt, interval)
                if time.monotonic() + pause > deadline:
                    raise HealthCheckFailed(url, f"{reason}, still failing at the deadline", last)
                await asyncio.sleep(pause)
            else:
                say(f"{check.name or check.path}: attempt {attempt}/{check.attempts}: {reason}")
                if attempt >= check.attempts:
                    raise HealthCheckFailed(url, f"{reason} after {attempt} attempts", last)
                await asyncio.sleep(check.wait)
