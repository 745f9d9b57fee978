"""Automatic HTTPS, measured: domains:add to first valid HTTPS response, and handshakes.

    python3 bench/certs.py [--rounds 5] [--duration 10] [--connections 20]

1. Issuance latency. Starts Berth's proxy in-process (uvloop) in front of a small app,
   real Pebble with PEBBLE_VA_NOSLEEP=1 (its HTTP-01 port pointed at the proxy, challtestsrv
   as DNS) and the real CertificateManager. Each round adds a new domain the way
   `domains:add` does (route, then `set_app_domains`) and polls the proxy's HTTPS port
   with that SNI name, verifying against Pebble's root, until the app answers. Round 1
   includes creating the ACME account. Target: under 5 s.
2. TLS handshake rate. The certificate Pebble just issued is served by nginx (1 worker)
   and by Berth's proxy (`python -m agent.proxy`, one process), both in front of the same
   nginx backend. wrk sends every request with `Connection: close`, so each request is a
   new TCP connection and a full TLS handshake. wrk takes the SNI name from the URL, so it
   runs in a private mount namespace whose /etc/hosts maps the name to 127.0.0.1 (the
   machine's own /etc/hosts is not touched). Best of `--rounds`, nginx and Berth
   alternating; prints both rates and the ratio.

Needs root (for unshare), pebble, nginx and wrk (Debian packages). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.certs.manager import CertificateManager
from agent.certs.settings import AcmeSettings
from agent.certs.state import SCHEMA
from agent.proxy import Proxy, ProxySettings, RouteOptions, Upstream
from agent.store.db import Database
from tests.certs.pebble import Pebble
from tests.certs.web import AppServer, client_context, get


async def resolve_like_challtestsrv(name: str) -> Sequence[str]:
    return ["127.0.0.1"]  # what pebble-challtestsrv answers: the preflight passes


async def issuance_rounds(workdir: Path, rounds: int) -> tuple[list[float], str]:
    """Seconds from set_app_domains to the first verified HTTPS 200, per round."""
    app = await AppServer().start()
    proxy = Proxy(ProxySettings(listen="127.0.0.1", http_port=0, https_port=0,
                                access_log=False))
    await proxy.start()
    pebble = await asyncio.to_thread(Pebble(workdir / "pebble", proxy.http_port).start)
    db = Database.open(workdir / "berth.db", [SCHEMA])
    settings = AcmeSettings(email="bench@example.test", directory=pebble.directory,
                            ca_bundle=pebble.ca_bundle, staging_dry_run=False)
    manager = CertificateManager(settings, workdir / "certs", db, proxy.challenges,
                                 proxy.certificates, resolver=resolve_like_challtestsrv)
    await manager.start()
    times: list[float] = []
    try:
        context = client_context(pebble.root_pem())
        for index in range(rounds):
            domain = f"bench{index}.example.test"
            proxy.set_route(f"app{index}", [domain], [Upstream("127.0.0.1", app.port)],
                            RouteOptions())
            started = time.monotonic()
            manager.set_app_domains(f"app{index}", [domain])
            while True:
                try:
                    response = await get(proxy.https_port or 0, domain, tls=context, timeout=5)
                    if response.status == 200:
                        break
                except (OSError, TimeoutError):  # no certificate yet: the handshake is refused
                    pass
                if time.monotonic() - started > 60:
                    raise SystemExit(f"no valid HTTPS for {domain} after 60 s: "
                                     f"{manager.status(f'app{index}')}")
                await asyncio.sleep(0.005)
            times.append(time.monotonic() - started)
            if manager.orders_placed(domain) != 1 or pebble.orders != index + 1:
                raise SystemExit(f"expected one order for {domain}, Pebble saw {pebble.orders}")
        return times, "bench0.example.test"
    finally:
        await manager.stop()
        db.close()
        await proxy.stop(2.0)
        await app.stop()
        pebble.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{what} exited") from None
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def nginx_conf(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.conf"
    path.write_text(f"""
worker_processes 1;
daemon off;
pid {path}.pid;
error_log {path}.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {directory}/body;
  proxy_temp_path {directory}/proxy;
  {body}
}}
""")
    return path


def wrk_handshakes(hosts_file: Path, url: str, duration: int, connections: int) -> tuple[float, int]:
    """Requests/s with a new TLS connection per request, and wrk's error count."""
    command = (f"mount --bind {hosts_file} /etc/hosts && exec wrk -t1 -c{connections} "
               f"-d{duration}s -H 'Connection: close' {url}")
    output = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True,
                            text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise SystemExit(f"wrk printed no rate:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return float(match.group(1)), errors + (int(non2xx.group(1)) if non2xx else 0)


def handshake_rates(workdir: Path, domain: str, args: argparse.Namespace) -> None:
    pem = next((workdir / "certs" / "acme").glob(f"*/live/{domain}.pem")).read_bytes()
    key_end = pem.index(b"-----END PRIVATE KEY-----") + len(b"-----END PRIVATE KEY-----\n")
    chain, key = workdir / "fullchain.pem", workdir / "key.pem"
    key.write_bytes(pem[:key_end])
    chain.write_bytes(pem[key_end:])
    hosts = workdir / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {domain}\n")
    backend_port, nginx_port, berth_http, berth_tls = (free_port() for _ in range(4))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        backend = nginx_conf(workdir, "backend", f"""
  server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 "hello\\n"; }} }}""")
        front = nginx_conf(workdir, "front", f"""
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 32; }}
  server {{ listen 127.0.0.1:{nginx_port} ssl; server_name {domain};
    ssl_certificate {chain}; ssl_certificate_key {key};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host; }} }}""")
        for conf, port in ((backend, backend_port), (front, nginx_port)):
            process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(process)
            wait_listening(process, port, "nginx")
        berth = subprocess.Popen(
            [sys.executable, "-m", "agent.proxy", "--listen", "127.0.0.1",
             "--http-port", str(berth_http), "--https-port", str(berth_tls),
             "--route", f"{domain}=127.0.0.1:{backend_port}", "--cert", f"{domain}={chain},{key}",
             "--no-access-log"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(berth)
        wait_listening(berth, berth_tls, "berth proxy")
        best = {"nginx": (0.0, 0), "berth": (0.0, 0)}
        for _ in range(args.rounds):
            for name, port in (("nginx", nginx_port), ("berth", berth_tls)):
                url = f"https://{domain}:{port}/"
                wrk_handshakes(hosts, url, 1, args.connections)  # warm up
                result = wrk_handshakes(hosts, url, args.duration, args.connections)
                if result[0] > best[name][0]:
                    best[name] = result
        (nginx_rate, nginx_errors), (berth_rate, berth_errors) = best["nginx"], best["berth"]
        print(f"\nTLS handshakes (new connection per request, ECDSA P-256 cert from Pebble), "
              f"wrk -t1 -c{args.connections} -d{args.duration}s, best of {args.rounds}")
        print(f"  nginx (1 worker)       {nginx_rate:>8.0f} handshakes/s  errors {nginx_errors}")
        print(f"  berth (1 process)      {berth_rate:>8.0f} handshakes/s  errors {berth_errors}")
        print(f"  ratio berth/nginx      {berth_rate / nginx_rate:>8.2f}x")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="issuances, and wrk rounds")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--skip-handshakes", action="store_true")
    args = parser.parse_args()
    for tool in ("pebble", "pebble-challtestsrv", "nginx", "wrk", "unshare"):
        if shutil.which(tool) is None:
            print(f"bench/certs.py: {tool} is not installed", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="berth-bench-certs-") as temp:
        workdir = Path(temp)
        workdir.chmod(0o755)
        times, domain = uvloop.run(issuance_rounds(workdir, args.rounds))
        print(f"domains:add -> first valid HTTPS response (Pebble, PEBBLE_VA_NOSLEEP=1), "
              f"{args.rounds} domains")
        print("  per round (s):  " + "  ".join(f"{t:.2f}" for t in times))
        print(f"  first (creates the ACME account) {times[0]:.2f} s; "
              f"median {statistics.median(times):.2f} s; max {max(times):.2f} s; target < 5 s")
        if not args.skip_handshakes:
            handshake_rates(workdir, domain, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
