"""Tiny network tools the firewall tests run inside their namespaces (`ip netns exec`).

netprobe.py listen TAG PORT...        TCP listeners on every port (IPv4 and IPv6);
                                      each connection gets "TAG:PORT\\n". Prints
                                      "ready" once all are bound, runs until killed.
netprobe.py connect TIMEOUT ADDR...   ADDR is HOST:PORT or [V6]:PORT; prints a JSON
                                      object ADDR -> the greeting, "refused" or "timeout".
netprobe.py ping COUNT HOST           COUNT ICMP/ICMPv6 echo requests at once; prints
                                      how many replies came back within 1 s.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def listen(tag: str, ports: list[int]) -> None:
    selector = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", port))
        server.listen(64)
        selector.register(server, selectors.EVENT_READ, port)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            conn, _ = sock.accept()
            with conn:
                conn.sendall(f"{tag}:{key.data}\n".encode())


def connect_one(address: str, timeout: float) -> str:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, int(port)))
            return sock.makefile().readline().strip()
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"error: {exc.strerror}"


def connect(timeout: float, addresses: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
        results = list(pool.map(lambda a: connect_one(a, timeout), addresses))
    print(json.dumps(dict(zip(addresses, results))))


def ping(count: int, host: str) -> None:
    v6 = ":" in host
    family, proto, request, reply = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129)
        if v6
        else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
    )
    ident = os.getpid() & 0xFFFF
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for seq in range(count):
            header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
            payload = b"berth-firewall-test"
            checksum = 0 if v6 else _checksum(header + payload)  # the kernel fills ICMPv6's
            packet = struct.pack("!BBHHH", request, 0, checksum, ident, seq) + payload
            sock.sendto(packet, (host, 0))
        replies: set[int] = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(2048)
            except TimeoutError:
                break
            icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            kind, _, _, got_ident, seq = struct.unpack("!BBHHH", icmp[:8])
            if kind == reply and got_ident == ident:
                replies.add(seq)
                if len(replies) == count:
                    break
    print(len(replies))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "listen":
        listen(args[0], [int(p) for p in args[1:]])
    elif command == "connect":
        connect(float(args[0]), args[1:])
    elif command == "ping":
        ping(int(args[0]), args[1])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
