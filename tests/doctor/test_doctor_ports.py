"""berth doctor's ports check on real sockets: a real proxy (in its own event loop) and a
real control API answering the doctor's questions; an app with a domain that reaches
this proxy (HTTP and, with its certificate, HTTPS), one whose address is served by a
plain HTTP server that answers every path with 200 (another loopback address), and one
whose address has nothing listening. Names resolve through the test's own table: the
connections are real, the DNS records are not."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from agent.cli.client import ControlClient
from agent.cli.verbs.doctor import ApiFacts
from agent.doctor import portprobe
from agent.doctor.checkup import Looks, checkup, is_public
from agent.doctor.findings import Finding
from agent.proxy import Proxy, ProxySettings
from agent.proxy.probe import Challenge
from agent.store.keys import SshKey
from tests.api.conftest import listening, make_services
from tests.certs.fakes import ThrowawayCA

ADDRESSES = {"here.test": ["127.0.0.1"], "elsewhere.test": ["127.0.0.2"],
             "closed.test": ["127.0.0.3"]}


@contextmanager
def running_proxy() -> Iterator[Proxy]:
    """A real proxy on 127.0.0.1 only, serving from a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = Proxy(ProxySettings(listen="127.0.0.1", http_port=0, https_port=0,
                                access_log=False))
    try:
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
        try:
            yield proxy
        finally:
            asyncio.run_coroutine_threadsafe(proxy.stop(2.0), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class AnswersEverything(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from another server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def other_server(address: str, port: int) -> Iterator[None]:
    server = http.server.ThreadingHTTPServer((address, port), AnswersEverything)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def ports_found(config, facts: ApiFacts, looks: Looks) -> dict[str, Finding]:
    return {f.subject: f for f in checkup(config, facts, looks) if f.subject.startswith("port")}


def test_the_ports_check_tells_this_agent_another_server_and_nothing_apart(tmp_path: Path):
    services, db = make_services(tmp_path)
    services.app_service().create("shop")
    for domain in ADDRESSES:
        services.apps.add_domain("shop", domain)
    services.keys.add(SshKey("ci", "ssh-ed25519 AAAA", "SHA256:ci", 0.0, ("shop",)))
    ca, now = ThrowawayCA(), time.time()
    with running_proxy() as proxy, other_server("127.0.0.2", proxy.http_port):
        proxy.certificates.put("here.test", *ca.issue_pair(["here.test"], now - 60, now + 3600))
        services.proxy = proxy
        config = replace(services.config, proxy=replace(
            proxy.settings, http_port=proxy.http_port, https_port=proxy.https_port))
        with listening(services, tmp_path):
            socket = config.paths.control_socket
            looks = Looks(resolve=lambda name: ADDRESSES.get(name, []),
                          own_addresses=lambda: {"127.0.0.1"})
            started = time.monotonic()
            found = ports_found(config, ApiFacts(ControlClient(socket, timeout=10)), looks)
            took = time.monotonic() - started
            # An app key: 127.0.0.2 taken for a public address, 127.0.0.3 not one.
            limited = ports_found(config, ApiFacts(ControlClient(socket, timeout=10, key="ci")),
                                  replace(looks, public=lambda address: address != "127.0.0.3"))
    db.close()
    http_port, https_port = proxy.http_port, proxy.https_port
    for port in (http_port, https_port):  # 443 over TLS with here.test's name
        assert found.pop(f"port {port} 127.0.0.1") == Finding(
            "ok", f"port {port} 127.0.0.1", "this server's proxy answers on 127.0.0.1")
    # Reached, but on a loopback address: from this machine only (a real record would
    # name the server's public address, as the namespace test below has it).
    here = found.pop(f"port {http_port} here.test")
    assert (here.level, here.message) == ("warn", ("here.test reaches this server on "
                                          "127.0.0.1, a loopback address: from this machine only"))
    tls = found.pop(f"port {https_port} here.test")  # over TLS, with its certificate
    assert tls.message.startswith("here.test reaches this server on 127.0.0.1"), tls
    elsewhere = found.pop(f"port {http_port} elsewhere.test")
    assert (elsewhere.level, elsewhere.message) == ("fail", (
        "elsewhere.test points at 127.0.0.2, which is not this server (it answered 200 OK)"))
    assert elsewhere.fix == "point elsewhere.test's A/AAAA record at this server (127.0.0.1)"
    closed = found.pop(f"port {http_port} closed.test")
    assert (closed.level, closed.message) == (
        "fail", f"port {http_port} unreachable on 127.0.0.3 (Connection refused)")
    assert "open port" in closed.fix
    assert found == {}, found  # no HTTPS probe where no certificate exists
    assert took < 20
    assert_an_app_key_sees_only_whether_this_agent_answered(limited, http_port)


def assert_an_app_key_sees_only_whether_this_agent_answered(
        found: dict[str, Finding], http_port: int) -> None:
    """What a key limited to apps is told: no probe of an address that is not public,
    and of another server only that it is not this one (not its status line)."""
    assert found[f"port {http_port} here.test"].level == "warn"
    assert found[f"port {http_port} elsewhere.test"] == Finding(
        "fail", f"port {http_port} elsewhere.test", "elsewhere.test on 127.0.0.2 does not "
        "reach this server", "point elsewhere.test's A/AAAA record at this server (127.0.0.1)")
    assert found[f"port {http_port} closed.test"] == Finding(
        "skip", f"port {http_port} closed.test", "not probed: 127.0.0.3 is not a public "
        "address (a key limited to apps has only public addresses probed)",
        "ask an admin to run berth doctor")
    said = " ".join(f.message + f.fix for f in found.values())
    assert "200 OK" not in said and "refused" not in said, said
    assert len(found) == 6  # this server on both ports, here.test on both


def test_only_global_unicast_addresses_are_public():
    for address in ("8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
                    "::ffff:0:808:808"):
        assert is_public(address), address
    for address in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254",
                    "100.64.0.1", "0.0.0.0", "224.0.0.1", "192.0.2.10", "::1", "fe80::1",
                    "fd00::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "ff02::1",
                    "2001:db8::1", "not-an-address", "255.255.255.255",
                    "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "::a00:1", "2002:a00:1::",
                    "::ffff:0:a00:1", "::ffff:0:a9fe:a9fe"):
        assert not is_public(address), address


def test_a_probe_is_this_agents_only_with_the_answer_to_its_own_nonce():
    with running_proxy() as proxy:
        here = portprobe.Target("127.0.0.1", proxy.http_port, "127.0.0.1")
        one, two, three = proxy.probe_challenges(3)
        assert portprobe.probe(here, one).who == "this agent"
        spent = portprobe.probe(here, one)  # a nonce is answered once
        assert (spent.who, spent.detail) == ("another server", "it answered 404 Not Found")
        # An answer taken from another probe (replayed, forwarded) does not match.
        replayed = portprobe.probe(here, Challenge(three.nonce, two.answer))
        assert (replayed.who, replayed.detail) == ("another server", "it answered 200 OK")
        made_up = portprobe.probe(here, Challenge("A" * len(one.nonce), one.answer))
        assert (made_up.who, made_up.detail) == ("another server", "it answered 404 Not Found")
        assert proxy.https_port is not None
        no_cert = portprobe.Target("127.0.0.1", proxy.https_port, "nocert.test", tls=True)
        refused = portprobe.probe(no_cert, two)
        assert refused.who == "another server" and "TLS handshake failed" in refused.detail
        connect_only = portprobe.Target("127.0.0.1", proxy.https_port, "", tls=True)
        assert portprobe.probe(connect_only, two).who == "something"


@pytest.mark.netns
def test_berth_doctor_in_a_namespace_of_its_own(tmp_path: Path):
    """The real thing but DNS: `berth doctor` as a user runs it, on a server (a network
    namespace the test creates) whose default route leaves from 203.0.113.7, whose names
    resolve through its own /etc/hosts, with the proxy on ports 80 and 443."""
    script = Path(__file__).with_name("in_netns.py")
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(["unshare", "--net", "--mount", sys.executable, str(script),
                             str(tmp_path)], capture_output=True, text=True, timeout=180,
                            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    found = {f["subject"]: f for f in report["findings"] if f["subject"].startswith("port")}
    for port in (80, 443):
        assert found.pop(f"port {port} 203.0.113.7")["message"] == (
            "this server's proxy answers on 203.0.113.7")
    assert found.pop("port 80 shop.test")["message"] == "shop.test reaches this server on 203.0.113.7"
    assert found.pop("port 443 shop.test")["level"] == "ok"
    elsewhere = found.pop("port 80 elsewhere.test")
    assert (elsewhere["level"], elsewhere["message"]) == ("fail", (
        "elsewhere.test points at 198.51.100.9, which is not this server (it answered 200 OK)"))
    assert elsewhere["fix"] == "point elsewhere.test's A/AAAA record at this server (203.0.113.7)"
    gone = found.pop("port 80 gone.test")
    assert gone["level"] == "fail" and gone["message"].startswith(
        "port 80 unreachable on 192.0.2.10 ("), gone
    assert found == {}, found
    assert report["status"] == 1  # the failures make doctor's exit status 1
