"""The proxy's per-request Python cost, without sockets: `python3 bench/proxy_hotpath.py`.

Feeds a keep-alive GET into a `ClientConnection`, answers it on a pooled
`UpstreamConnection` with nginx's response head, through fake transports that only
count bytes; prints CPU microseconds per request (best of `--repeat` runs). With
`--profile`, prints cProfile's top. With `--instructions`, counts the instructions per
request under valgrind's callgrind instead (two runs of different lengths, their
difference divided by the extra requests): a figure that the machine's load does not
move, for comparing two versions of the code. This is the part of a request that
optimisation can change (the syscalls are not; bench/proxy.py --keep and strace -c show
those).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.proxy.certs import CertificateStore
from agent.proxy.challenges import ChallengeTokens
from agent.proxy.client import ClientConnection
from agent.proxy.context import Context
from agent.proxy.model import RouteOptions, Upstream
from agent.proxy.routes import RouteTable
from agent.proxy.settings import ProxySettings
from agent.proxy.upstream import UpstreamConnection

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 22:20:20 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 12\r\n"
    b"Connection: keep-alive\r\n\r\nhello world\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, data: list[bytes]) -> None:
        self.written += sum(map(len, data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


def run(count: int, profile: bool) -> float:
    loop = uvloop.new_event_loop()
    settings = ProxySettings(access_log=False)
    table = RouteTable()
    table.set("app", ["localhost"], [Upstream("127.0.0.1", 9)], RouteOptions())
    ctx = Context(settings, loop, table, CertificateStore(), ChallengeTokens(), None)
    target = table.get("app").targets[0]
    upstream = UpstreamConnection(ctx, target)
    upstream.connection_made(FakeTransport())  # type: ignore[arg-type]
    target.idle.append(upstream)
    client = ClientConnection(ctx, False)
    client.connection_made(FakeTransport())  # type: ignore[arg-type]
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.thread_time()  # CPU time: other processes on the machine count less
    for _ in range(count):
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    elapsed = time.thread_time() - started
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(70)
    loop.close()
    return elapsed / count * 1e6


def instructions(short: int, long: int) -> float:
    """Instructions per request under callgrind: (long run - short run) / extra requests."""
    counts = []
    for count in (short, long):
        command = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--count", str(count), "--repeat", "1", "--warmup", "200",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        found = re.search(r"Collected : (\d+)", result.stderr)
        if found is None:
            raise SystemExit(f"no count from callgrind:\n{result.stderr[-500:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per request under valgrind (slow: minutes)",
    )
    args = parser.parse_args()
    if args.instructions:
        per_request = instructions(1_000, 4_000)
        print(f"{per_request:,.0f} instructions per proxied request (Python side only)")
        return
    run(args.warmup, False)
    if args.profile:
        run(args.count, True)
        return
    best = min(run(args.count, False) for _ in range(args.repeat))
    print(f"{best:.2f} us per proxied request (Python side only, best of {args.repeat})")


if __name__ == "__main__":
    main()
