"""What `berth doctor` looks at (I/O only, no judging): the disk, memory, the Docker
engine, name resolution, this host's addresses, HTTPS endpoints, the agent's
restart count. Every network probe has a short deadline."""

from __future__ import annotations

import email.utils
import http.client
import shutil
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent import processgroup
from agent.errors import BerthError

TIMEOUT = 5.0


@dataclass(frozen=True)
class Reach:
    """The outcome of reaching an endpoint: error None when it answered."""

    error: str | None
    tls_failure: bool = False
    date_offset: float | None = None  # our clock minus the server's Date header


def disk(path: Path) -> tuple[int, int]:
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


def memory(meminfo: Path = Path("/proc/meminfo")) -> tuple[int, int]:
    """(available, total) in bytes."""
    values = {}
    for line in meminfo.read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values.get("MemAvailable", values["MemFree"]), values["MemTotal"]


class EngineUnavailable(BerthError):
    """The Docker engine did not answer."""


def docker_engine(url: str) -> tuple[str, Path, int | None]:
    """(version, root dir, bytes of images and layers)."""
    import docker
    import docker.errors

    try:
        client = docker.DockerClient(base_url=url, timeout=TIMEOUT)
        try:
            info = client.info()
            layers = client.df().get("LayersSize")
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineUnavailable(str(exc)) from exc
    return str(info.get("ServerVersion", "?")), Path(info["DockerRootDir"]), layers


def resolve(name: str) -> list[str]:
    try:
        answers = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return []
    return sorted({str(answer[4][0]) for answer in answers})


def own_addresses() -> set[str]:
    """The source addresses of this host's default routes (no packet is sent)."""
    found = set()
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                found.add(str(probe.getsockname()[0]))
        except OSError:
            continue
    return found


def ipv6_addresses(table: Path = Path("/proc/net/if_inet6")) -> set[str]:
    """Every IPv6 address of global scope on this host's interfaces (a server may have
    several: its default route's source is only one of them); none without IPv6."""
    found: set[str] = set()
    try:
        lines = table.read_text(encoding="ascii").splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "00" and len(fields[0]) == 32:
            packed = bytes.fromhex(fields[0])
            found.add(socket.inet_ntop(socket.AF_INET6, packed))
    return found


def _context(cafile: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def https_get(url: str, cafile: Path | None) -> Reach:
    """GET url; the Date header gives the clock offset."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                             timeout=TIMEOUT, context=_context(cafile))
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        response.read()
        date = response.getheader("Date")
    except ssl.SSLCertVerificationError as exc:
        return Reach(exc.verify_message or str(exc), tls_failure=True)
    except (OSError, http.client.HTTPException) as exc:
        return Reach(str(exc) or type(exc).__name__)
    finally:
        connection.close()
    offset = None
    if date:
        offset = time.time() - email.utils.parsedate_to_datetime(date).timestamp()
    return Reach(None, date_offset=offset)


SUPERVISOR_RESTARTS = Path("/run/berth-supervise.restarts")  # written by install.sh's loop


def agent_restarts(unit: str = "berth") -> int | None:
    """How often systemd (or, without it, install.sh's respawning loop) restarted the
    agent since boot; None when neither counts."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        try:
            return int(SUPERVISOR_RESTARTS.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
    result = processgroup.run(["systemctl", "show", "-p", "NRestarts", "--value", unit],
                              capture_output=True, text=True, timeout=TIMEOUT)
    value = result.stdout.strip()
    return int(value) if value.isdigit() else None
