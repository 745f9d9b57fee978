"""A small network of namespaces to test the firewall with real packets.

    client ns                 server ns ("the VPS")                      container ns
    c0 10.77.0.2  ---veth---  s0 10.77.0.1             docker0 172.31.0.1 ---veth--- eth0 172.31.0.2
       fd77::2                   fd77::1                       fd78::1                    fd78::2

The server namespace gets the shape Docker creates, made with Docker's own tool
(iptables-nft): forwarding on, a DNAT of host port 8000 to the container's port 80 in
nat PREROUTING and OUTPUT (the userland-proxy=false shape, with route_localnet on the
bridge so 127.0.0.1:8000 works), masquerade for the containers' outbound traffic, and the
FORWARD chain with policy drop plus the DOCKER accept that opens the published port to the
world. It also holds a decoy table that Berth must never touch.

Listeners: the server on 22, 80, 443, 2222, 5432 and 8080; the container on 80; the
client on 9000 (for outbound checks). Each answers "TAG:PORT".

Everything lives in namespaces named after this process's pid, made here and deleted in
teardown even when a test fails. Nothing is ever applied in the machine's own namespace.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
NETPROBE = str(HERE / "netprobe.py")
SERVER_PORTS = (22, 80, 443, 2222, 5432, 8080)
PUBLISHED_PORT = 8000  # host port Docker-style DNAT'd to the container's 80

DECOY = """\
table inet decoy {
	set keep {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}

	chain input {
		type filter hook input priority 50; policy accept;
		ip saddr @keep counter
	}
}
"""

DOCKER_SHAPE_V4 = [
    ["-t", "nat", "-N", "DOCKER"],
    ["-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"],
    ["-t", "nat", "-A", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"],
    ["-t", "nat", "-A", "POSTROUTING", "-s", "172.31.0.0/24", "!", "-o", "docker0",
     "-j", "MASQUERADE"],
    ["-t", "nat", "-A", "POSTROUTING", "-o", "docker0", "-m", "addrtype", "--src-type",
     "LOCAL", "-j", "MASQUERADE"],
    ["-t", "nat", "-A", "DOCKER", "-i", "docker0", "-j", "RETURN"],
    ["-t", "nat", "-A", "DOCKER", "!", "-i", "docker0", "-p", "tcp", "--dport",
     str(PUBLISHED_PORT), "-j", "DNAT", "--to-destination", "172.31.0.2:80"],
    ["-P", "FORWARD", "DROP"],
    ["-N", "DOCKER"],
    ["-N", "DOCKER-USER"],
    ["-A", "FORWARD", "-j", "DOCKER-USER"],
    ["-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
     "-j", "ACCEPT"],
    ["-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"],
    ["-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"],
    ["-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT"],
    ["-A", "DOCKER", "-d", "172.31.0.2/32", "!", "-i", "docker0", "-o", "docker0", "-p", "tcp",
     "--dport", "80", "-j", "ACCEPT"],
    ["-A", "DOCKER-USER", "-j", "RETURN"],
]  # fmt: skip


def _docker_shape_v6() -> list[list[str]]:
    rules = []
    for rule in DOCKER_SHAPE_V4:
        text = " ".join(rule)
        text = text.replace("172.31.0.0/24", "fd78::/64").replace("172.31.0.2/32", "fd78::2/128")
        text = text.replace("172.31.0.2:80", "[fd78::2]:80")
        rules.append(text.split(" "))
    return rules


@dataclass
class Lab:
    server: str
    client: str
    container: str
    workdir: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def ip(self, *args: str) -> None:
        _run(["ip", *args])

    def run(self, ns: str, *argv: str, stdin: str | None = None) -> str:
        return _run(["ip", "netns", "exec", ns, *argv], stdin=stdin)

    def nft(self, *args: str, stdin: str | None = None) -> str:
        return self.run(self.server, "nft", *args, stdin=stdin)

    def connect(self, ns: str, *addresses: str, timeout: float = 1.5) -> dict[str, str]:
        out = self.run(ns, sys.executable, NETPROBE, "connect", str(timeout), *addresses)
        result: dict[str, str] = json.loads(out)
        return result

    def ping(self, ns: str, host: str, count: int = 1) -> int:
        return int(self.run(ns, sys.executable, NETPROBE, "ping", str(count), host))

    def listen(self, ns: str, tag: str, *ports: int) -> None:
        argv = ["ip", "netns", "exec", ns, sys.executable, NETPROBE, "listen", tag]
        proc = subprocess.Popen(
            [*argv, *map(str, ports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)  # never wait on a hung one
        line = proc.stdout.readline().strip() if ready else "no word within 30 s"
        if line != "ready":
            proc.kill()
            _, errors = proc.communicate(timeout=10)
            raise RuntimeError(f"listener in {ns} failed: {line} {errors}")

    def build(self) -> None:
        for ns in (self.server, self.client, self.container):
            self.ip("netns", "add", ns)
            self.run(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0")
            self.run(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
            self.ip("-n", ns, "link", "set", "lo", "up")
        s, c, k = self.server, self.client, self.container
        self.ip("-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "s0", "netns", s)
        self.ip("-n", s, "link", "add", "docker0", "type", "bridge")
        self.ip("-n", k, "link", "add", "eth0", "type", "veth", "peer", "name", "vethk", "netns", s)
        self.ip("-n", s, "link", "set", "vethk", "master", "docker0")
        for ns, dev, v4, v6 in (
            (s, "s0", "10.77.0.1/24", "fd77::1/64"),
            (c, "c0", "10.77.0.2/24", "fd77::2/64"),
            (s, "docker0", "172.31.0.1/24", "fd78::1/64"),
            (k, "eth0", "172.31.0.2/24", "fd78::2/64"),
        ):
            self.ip("-n", ns, "addr", "add", v4, "dev", dev)
            self.ip("-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad")
            self.ip("-n", ns, "link", "set", dev, "up")
        self.ip("-n", s, "link", "set", "vethk", "up")
        self.ip("-n", k, "route", "add", "default", "via", "172.31.0.1")
        self.ip("-n", k, "-6", "route", "add", "default", "via", "fd78::1")
        for key in (
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.docker0.route_localnet=1",
        ):
            self.run(s, "sysctl", "-q", "-w", key)
        for rule in DOCKER_SHAPE_V4:
            self.run(s, "iptables", *rule)
        for rule in _docker_shape_v6():
            self.run(s, "ip6tables", *rule)
        self.nft("-f", "-", stdin=DECOY)
        self.listen(s, "server", *SERVER_PORTS)
        self.listen(k, "container", 80)
        self.listen(c, "client", 9000)

    def destroy(self) -> None:
        for proc in self.processes:
            proc.kill()
            proc.communicate()
        for ns in (self.server, self.client, self.container):
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)

    def sshd_command(self) -> tuple[str, ...]:
        """A real `sshd -T` whose configuration says Port 22, independent of this machine's."""
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        key = self.workdir / "hostkey"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        config = self.workdir / "sshd_config"
        config.write_text(f"Port 22\nHostKey {key}\n")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd -T insists on its privsep directory
        return (sshd, "-T", "-f", str(config))


def remove_stale_namespaces() -> None:
    """Delete lab namespaces left by a test process that was killed before its teardown."""
    listed = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        match = re.match(r"^bfw(\d+)[sck]\b", line)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            name = line.split()[0]
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def _run(argv: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, check=False, input=stdin, capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout
