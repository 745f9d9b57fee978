"""Berth's proxy next to nginx, in the same run, in front of the same backend.

    python3 bench/proxy.py [--duration 10] [--connections 50] [--rounds 2] [--idle 10000]
                           [--only small|1m|tls] [--access-log] [--keep]

Starts a backend nginx (1 worker: a tiny `return 200` location and a 1 MiB static file),
nginx as a proxy (1 worker, keep-alive upstream pool, access log off) and the Berth proxy
(`python -m agent.proxy`, one process, access log off), both with the same certificate for
`localhost`. Drives both with wrk (1 thread, same settings) and prints req/s, p50, p99 for
each and the ratios, for: small responses over keep-alive, a 1 MiB response, small
responses over TLS (keep-alive); then holds N idle keep-alive client connections to each
and reports the memory growth of the proxy process. Each wrk run is repeated `--rounds`
times, nginx then Berth back to back; the round with the median ratio is reported (the
load of a shared machine drifts between rounds, much less within one).

Needs nginx and wrk (Debian packages). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "localhost"


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), False)
        .sign(key, hashes.SHA256())
    )
    chain, key_path = directory / "cert.pem", directory / "key.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, key_path


def nginx_config(directory: Path, body: str) -> Path:
    path = directory / f"nginx-{abs(hash(body))}.conf"
    path.write_text(
        f"""
worker_processes 1;
daemon off;
pid {path}.pid;
error_log {path}.error.log warn;
worker_rlimit_nofile 30000;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {directory}/body;
  proxy_temp_path {directory}/proxy;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  {body}
}}
"""
    )
    return path


def start(argv: list[str], ready_port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:  # a file, not a pipe: a full pipe would stall the process
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ready_port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{argv[0]} exited: {log.read_text()[-500:]}")
            time.sleep(0.05)
    raise SystemExit(f"{argv} did not start listening on {ready_port}")


def wrk(url: str, duration: int, connections: int) -> Result:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    return Result(rps, _percentile(output, "50%"), _percentile(output, "99%"), errors)


def _percentile(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    assert match, output
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (nginx's master + worker)."""
    total = rss_kib(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(rss_kib(int(child)) for child in children)


async def hold_idle(
    port: int, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open `count` keep-alive connections, one request each, and keep them open."""
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    held = []
    for start_at in range(0, count, 500):
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(500, count - start_at)))
        )
        for _, writer in batch:
            writer.write(request)
        for reader, _ in batch:
            await reader.readuntil(b"hello world\n")
        held.extend(batch)
    return held


def idle_growth(port: int, pid: int, count: int, tree: bool) -> tuple[float, int]:
    measure = tree_rss_kib if tree else rss_kib

    async def run() -> tuple[float, int]:
        before = measure(pid)
        held = await hold_idle(port, count)
        await asyncio.sleep(1.0)
        after = measure(pid)
        alive = sum(1 for _, w in held if not w.is_closing())
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.5)
        return (after - before) / 1024, alive

    return asyncio.run(run())


def print_row(name: str, nginx: Result, berth: Result) -> None:
    ratio = berth.requests_per_second / nginx.requests_per_second
    p99_ratio = berth.p99_ms / nginx.p99_ms if nginx.p99_ms else float("inf")
    print(
        f"{name:<24} {nginx.requests_per_second:>10.0f} {berth.requests_per_second:>10.0f} "
        f"{ratio:>6.2f}x  {nginx.p50_ms:>6.2f}/{nginx.p99_ms:<7.2f} "
        f"{berth.p50_ms:>6.2f}/{berth.p99_ms:<7.2f} {p99_ratio:>6.2f}x"
        + (
            f"  errors nginx={nginx.errors} berth={berth.errors}"
            if nginx.errors or berth.errors
            else ""
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="both log each request (nginx with a 64k buffer, Berth with its buffered handler)",
    )
    parser.add_argument(
        "--only", choices=("small", "1m", "tls"), action="append", help="run only these"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="start the proxies, print their ports and PIDs, and wait for SIGINT/SIGTERM (for"
        " strace, perf or wrk by hand) instead of benchmarking",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(
                f"bench/proxy.py: {tool} is not installed (apt-get install {tool})", file=sys.stderr
            )
            return 1
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 1000:
        print(
            f"bench/proxy.py: open files limit {hard} is too low for --idle {args.idle}",
            file=sys.stderr,
        )
        return 1

    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as temp:
        directory = Path(temp)
        directory.chmod(0o755)  # nginx's workers (nobody) read the static file
        chain, key = make_certificate(directory)
        (directory / "www").mkdir()
        (directory / "www" / "1m").write_bytes(os.urandom(1024 * 1024))
        (directory / "www" / "1m").chmod(0o644)
        backend_port, nginx_port, nginx_tls = free_port(), free_port(), free_port()
        berth_port, berth_tls = free_port(), free_port()
        try:
            backend = nginx_config(
                directory,
                f"""
  server {{ listen 127.0.0.1:{backend_port} backlog=4096;
    location = / {{ return 200 "hello world\\n"; }}
    location = /1m {{ root {directory}/www; }} }}""",
            )
            processes.append(
                start(["nginx", "-c", str(backend), "-p", temp], backend_port, directory / "b.log")
            )
            nginx_log = (
                f"access_log {directory}/access.log combined buffer=64k flush=1s;"
                if args.access_log
                else ""
            )
            proxy = nginx_config(
                directory,
                f"""
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_port} backlog=4096;
    listen 127.0.0.1:{nginx_tls} ssl backlog=4096;
    ssl_certificate {chain}; ssl_certificate_key {key};
    {nginx_log}
    location / {{ proxy_pass http://backend; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffers 8 64k; proxy_buffer_size 64k; proxy_max_temp_file_size 0; }} }}""",
            )
            nginx = start(["nginx", "-c", str(proxy), "-p", temp], nginx_port, directory / "n.log")
            processes.append(nginx)
            berth_argv = [
                sys.executable, "-m", "agent.proxy", "--listen", "127.0.0.1",
                "--http-port", str(berth_port), "--https-port", str(berth_tls),
                "--route", f"{HOST}=127.0.0.1:{backend_port}", "--no-https-redirect",
                "--cert", f"{HOST}={chain},{key}", "--max-connections", str(args.idle + 2000),
                "--access-log" if args.access_log else "--no-access-log",
            ]  # fmt: skip
            berth = start(berth_argv, berth_port, directory / "berth.log")
            processes.append(berth)
            if args.keep:
                nginx_worker = Path(f"/proc/{nginx.pid}/task/{nginx.pid}/children").read_text()
                print(f"backend port={backend_port}\nnginx ports http={nginx_port} "
                      f"https={nginx_tls} master={nginx.pid} worker={nginx_worker.strip()}\n"
                      f"berth ports http={berth_port} https={berth_tls} pid={berth.pid}\n"
                      "SIGINT or SIGTERM stops them", flush=True)  # fmt: skip
                # Also when started in the background (where SIGINT arrives ignored).
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: sys.exit(0))
                while True:
                    time.sleep(3600)

            print(f"wrk -t1 -c{args.connections} -d{args.duration}s, median of {args.rounds} rounds, "
                  f"host {HOST}; nginx 1 worker vs Berth 1 process (access log "
                  f"{'on' if args.access_log else 'off'})")  # fmt: skip
            print(f"{'scenario':<24} {'nginx r/s':>10} {'berth r/s':>10} {'ratio':>7}  "
                  f"{'nginx p50/p99 ms':>14} {'berth p50/p99 ms':>14} {'p99 ratio':>9}")  # fmt: skip
            scenarios = [
                ("small, keep-alive", "http", nginx_port, berth_port, "/"),
                ("1 MiB, keep-alive", "http", nginx_port, berth_port, "/1m"),
                ("small, TLS keep-alive", "https", nginx_tls, berth_tls, "/"),
            ]
            keys = {
                "small, keep-alive": "small",
                "1 MiB, keep-alive": "1m",
                "small, TLS keep-alive": "tls",
            }
            for name, scheme, n_port, b_port, path in scenarios:
                if args.only and keys[name] not in args.only:
                    continue
                rounds = []
                for _ in range(args.rounds):
                    wrk(f"{scheme}://{HOST}:{n_port}{path}", 1, args.connections)  # warm up
                    n = wrk(f"{scheme}://{HOST}:{n_port}{path}", args.duration, args.connections)
                    wrk(f"{scheme}://{HOST}:{b_port}{path}", 1, args.connections)
                    b = wrk(f"{scheme}://{HOST}:{b_port}{path}", args.duration, args.connections)
                    rounds.append((n, b))
                # The machine's load drifts: compare within a round, report the median round.
                rounds.sort(key=lambda r: r[1].requests_per_second / r[0].requests_per_second)
                best_n, best_b = rounds[len(rounds) // 2]
                print_row(name, best_n, best_b)
                ratios = [f"{b.requests_per_second / n.requests_per_second:.2f}" for n, b in rounds]
                print(f"{'':<24} per-round ratios: {' '.join(ratios)}")
                if path == "/1m":
                    print(f"{'':<24} throughput MiB/s: nginx {best_n.requests_per_second:.0f}, "
                          f"berth {best_b.requests_per_second:.0f}")  # fmt: skip
            if not args.idle:
                return 0
            n_growth, n_alive = idle_growth(nginx_port, nginx.pid, args.idle, tree=True)
            b_growth, b_alive = idle_growth(berth_port, berth.pid, args.idle, tree=False)
            print(f"{args.idle} idle keep-alive connections: memory growth nginx {n_growth:.1f} MB "
                  f"({n_alive} held), berth {b_growth:.1f} MB ({b_alive} held; target < 100 MB)")  # fmt: skip
        finally:
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
