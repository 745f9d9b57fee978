"""One TLS reach probe, run in two places: inside a short-lived build container (its
source is handed to the image's python3, so it uses the standard library only and
keeps to Python 3.7's syntax) and on the host, for comparison.

For each `host[:port]` target it resolves the name, connects and completes a verified
TLS handshake, and says which of those failed: `dns`, `connect`, `handshake` (connected,
but TLS did not complete: a proxy or a path MTU that drops big packets), `verify` (the
certificate is not trusted: TLS interception) or `ok`. Run as a program it prints one JSON
line per target as each finishes: argv is the timeout in seconds, the extra CA bundle
("" for none) and the targets.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading

KINDS = ("ok", "dns", "connect", "handshake", "verify")


def split_target(target: str) -> tuple[str, int]:
    """("pypi.org", 443) from "pypi.org", ("172.17.0.1", 8443) from "172.17.0.1:8443"."""
    host, _, port = target.rpartition(":")
    if host and port.isdigit():
        return host, int(port)
    return target, 443


def _context(extra_ca: str) -> ssl.SSLContext:
    """The system's roots plus the extra bundle, as builds trust them (build.ca_bundle)."""
    context = ssl.create_default_context()
    if extra_ca:
        context.load_verify_locations(cafile=extra_ca)
    return context


def probe(target: str, timeout: float, extra_ca: str = "") -> dict[str, str]:
    """{"target", "kind", "error"} for one target; error is "" when kind is ok."""
    host, port = split_target(target)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return _outcome(target, "dns", exc)
    try:
        raw = _connect(addresses, timeout)
    except OSError as exc:
        return _outcome(target, "connect", exc)
    try:
        with _context(extra_ca).wrap_socket(raw, server_hostname=host):
            return _outcome(target, "ok", None)
    except ssl.SSLCertVerificationError as exc:
        return {"target": target, "kind": "verify", "error": exc.verify_message or str(exc)}
    except (OSError, ValueError) as exc:
        return _outcome(target, "handshake", exc)
    finally:
        raw.close()


def _connect(addresses: list, timeout: float) -> socket.socket:  # type: ignore[type-arg]
    """A socket connected to the first of `addresses` that accepts (the last error else)."""
    error: OSError = OSError("no address")
    for family, kind, proto, _, address in addresses:
        raw = socket.socket(family, kind, proto)
        raw.settimeout(timeout)
        try:
            raw.connect(address)
            return raw
        except OSError as exc:
            raw.close()
            error = exc
    raise error


def _outcome(target: str, kind: str, exc: BaseException | None) -> dict[str, str]:
    text = "" if exc is None else (str(exc) or type(exc).__name__)
    if isinstance(exc, socket.timeout):
        text = "timed out"
    return {"target": target, "kind": kind, "error": text}


def main(argv: list[str]) -> None:
    timeout, extra_ca, targets = float(argv[0]), argv[1], argv[2:]
    lock = threading.Lock()

    def run(target: str) -> None:
        line = json.dumps(probe(target, timeout, extra_ca))
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1:])
