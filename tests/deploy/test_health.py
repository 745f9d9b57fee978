import asyncio
import time

import pytest

from agent.appjson import HealthCheck
from agent.deploy.health import HealthCheckFailed, ProbeResult, judge, probe, wait_healthy


class Server:
    """A real HTTP server on loopback answering from a script of (status, body)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    async def handle(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.decode())
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


def alive():
    async def check():
        return None
    return check


def test_judge_default_accepts_below_500():
    default = HealthCheck(default=True)
    assert judge(default, ProbeResult(404)) is None
    assert judge(default, ProbeResult(503)) == "status 503"
    assert judge(default, ProbeResult(None, error="refused")) == "refused"


def test_judge_app_json_wants_2xx_3xx_and_content():
    check = HealthCheck(path="/h", content="ok")
    assert judge(check, ProbeResult(200, b"all ok")) is None
    assert judge(check, ProbeResult(404, b"ok")) == "status 404"
    assert "does not contain" in judge(check, ProbeResult(200, b"nope"))


async def test_probe_sends_the_apps_host_and_forwarded_proto():
    async with Server([(200, b"fine")]) as server:
        result = await probe(server.port, "/x", host_header="shop.example.com",
                             headers=[("X-Forwarded-Proto", "https")], timeout=5)
    assert result.status == 200 and result.body == b"fine"
    assert "Host: shop.example.com" in server.requests[0]
    assert "X-Forwarded-Proto: https" in server.requests[0]


async def test_probe_reports_refusal():
    result = await probe(1, "/", host_header="x", timeout=2)
    assert result.status is None and result.error


async def test_default_check_retries_until_healthy():
    async with Server([(502, b""), (502, b""), (200, b"")]) as server:
        await wait_healthy(server.port, [], host_header="x", extra_headers=[],
                           deadline=time.monotonic() + 10, interval=0.05, alive=alive(),
                           say=lambda _: None)
    assert len(server.requests) == 3


async def test_default_check_fails_at_the_deadline_with_the_last_status():
    async with Server([(500, b"broken db")]) as server:
        with pytest.raises(HealthCheckFailed) as caught:
            await wait_healthy(server.port, [], host_header="x", extra_headers=[],
                               deadline=time.monotonic() + 0.5, interval=0.1, alive=alive(),
                               say=lambda _: None)
    assert caught.value.last_status == 500
    assert "broken db" in str(caught.value)


async def test_app_json_attempts_are_counted():
    check = HealthCheck(path="/ready", content="READY", attempts=3, wait=0.01, timeout=2)
    async with Server([(200, b"starting")]) as server:
        with pytest.raises(HealthCheckFailed, match="after 3 attempts"):
            await wait_healthy(server.port, [check], host_header="x", extra_headers=[],
                               deadline=time.monotonic() + 10, interval=0.1, alive=alive(),
                               say=lambda _: None)
    assert len(server.requests) == 3


async def test_a_dead_container_fails_at_once():
    async def dead():
        return "exited with code 3"
    started = time.monotonic()
    with pytest.raises(HealthCheckFailed, match="exited with code 3"):
        await wait_healthy(1, [], host_header="x", extra_headers=[],
                           deadline=time.monotonic() + 30, interval=1, alive=dead,
                           say=lambda _: None)
    assert time.monotonic() - started < 5


def test_retries_start_fast_and_back_off_to_the_interval():
    from agent.deploy.health import retry_pause

    assert {retry_pause(n, 1.0) for n in range(1, 51)} == {0.02}
    assert [retry_pause(n, 1.0) for n in range(51, 58)] == [0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]


async def test_a_failing_check_asks_the_engine_sparingly():
    """Probes every 20 ms, but the container's liveness (an engine inspection) at most
    every 250 ms: the check stays quick without hammering the engine."""
    asked = []

    async def running():
        asked.append(time.monotonic())

    with pytest.raises(HealthCheckFailed, match="still failing at the deadline"):
        await wait_healthy(1, [], host_header="x", extra_headers=[],
                           deadline=time.monotonic() + 1.0, interval=1, alive=running,
                           say=lambda _: None)
    assert 2 <= len(asked) <= 6, asked
    assert all(b - a >= 0.24 for a, b in zip(asked, asked[1:]))
