"""Run inside a fresh network and mount namespace (`unshare --net --mount`): a server
whose default route leaves from 203.0.113.7, an /etc/hosts of its own (bind-mounted in
this mount namespace only), Berth's real proxy on ports 80 and 443, its control API, a
plain HTTP server on another address, and `berth doctor --json` run as a user would;
doctor's findings are printed as JSON. Nothing here touches the machine's own network or
files: the namespaces end with this process."""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

HOSTS = """127.0.0.1 localhost
203.0.113.7 shop.test
198.51.100.9 elsewhere.test
192.0.2.10 gone.test
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=20)


def network() -> None:
    sh("ip", "link", "set", "lo", "up")
    for name, address in (("pub0", "203.0.113.7/24"), ("other0", "198.51.100.9/24")):
        peer = name[:-1] + "1"  # a veth pair inside the namespace (no dummy module here)
        sh("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        sh("ip", "addr", "add", address, "dev", name)
        sh("ip", "link", "set", name, "up")
        sh("ip", "link", "set", peer, "up")
    sh("ip", "route", "add", "default", "via", "203.0.113.1")
    sh("ip", "route", "add", "unreachable", "192.0.2.10/32")  # a host that is not there


class AnswersEverything(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"another server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def main(tmp: Path) -> int:
    from agent.proxy import Proxy, ProxySettings
    from tests.api.conftest import listening, make_services
    from tests.certs.fakes import ThrowawayCA

    network()
    (tmp / "hosts").write_text(HOSTS)
    sh("mount", "--bind", str(tmp / "hosts"), "/etc/hosts")
    # No name server here: queries for other names are refused at once, not timed out.
    (tmp / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    sh("mount", "--bind", str(tmp / "resolv.conf"), "/etc/resolv.conf")
    other = http.server.ThreadingHTTPServer(("198.51.100.9", 80), AnswersEverything)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    # Ports 80 and 443 of the public address (0.0.0.0 would take 198.51.100.9:80 too).
    proxy = Proxy(ProxySettings(listen="203.0.113.7", access_log=False))
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    now = time.time()
    proxy.certificates.put("shop.test", *ThrowawayCA().issue_pair(["shop.test"], now - 60,
                                                                   now + 3600))
    services, _db = make_services(tmp)
    services.proxy = proxy
    services.app_service().create("shop")
    for domain in ("shop.test", "elsewhere.test", "gone.test"):
        services.apps.add_domain("shop", domain)
    with listening(services, tmp) as environ:
        doctor = subprocess.run([sys.executable, "-m", "agent", "doctor", "--json"],
                                env={**environ, "PYTHONPATH": str(Path.cwd())},
                                capture_output=True, text=True, timeout=120, check=False)
    if doctor.stderr:
        print(doctor.stderr, file=sys.stderr)
    print(json.dumps({"status": doctor.returncode, "findings": json.loads(doctor.stdout)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
