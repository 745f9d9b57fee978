"""berth doctor: the judgments (pure), the TLS probe against a real local TLS server
(a wrong CA bundle is a TLS failure with the ca_bundle hint), the DNS loopback trap,
and the whole checkup with an agent that answers nothing."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import Config
from agent.doctor import findings, probes, tlsreach
from agent.doctor.checkup import checkup
from agent.doctor.findings import CA_HINT
from agent.errors import AgentUnavailable

GIB = 1024 ** 3


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_server(cert: Path, key: Path) -> tuple[int, socket.socket]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], listener


def test_a_wrong_ca_is_a_tls_failure_with_the_ca_bundle_hint(tmp_path):
    cert, key = self_signed(tmp_path, "server")
    other, _ = self_signed(tmp_path, "other")
    port, listener = tls_server(cert, key)
    target = f"localhost:{port}"
    try:
        assert tlsreach.probe(target, 5.0, str(cert)) == {
            "target": target, "kind": "ok", "error": ""}
        wrong = tlsreach.probe(target, 5.0, str(other))
        assert wrong["kind"] == "verify" and wrong["error"]
        finding = findings.registry(target, wrong["kind"], wrong["error"], None)
        assert finding.level == "fail" and "build.ca_bundle" in finding.fix
        assert finding.message.startswith("TLS verification failed from a build container")
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    closed = tlsreach.probe(f"127.0.0.1:{free}", 5.0, str(cert))
    assert closed["kind"] == "connect" and closed["error"]
    assert tlsreach.probe("registry.invalid", 5.0)["kind"] == "dns"


def test_a_registry_the_host_reaches_but_builds_do_not_blames_docker():
    dns = findings.registry("pypi.org", "dns", "Name or service not known", "ok")
    assert dns.level == "fail" and "this host reaches it" in dns.message
    assert "daemon.json" in dns.fix and "resolv.conf" in dns.fix
    forward = findings.registry("pypi.org", "connect", "timed out", "verify")
    assert "FORWARD" in forward.fix
    trusted_here = findings.registry("pypi.org", "verify", "self-signed certificate", "ok",
                                     host_bundle="/etc/ssl/certs/ca-certificates.crt")
    assert trusted_here.message.endswith("; this host trusts it")
    assert trusted_here.fix.startswith(
        'set build.ca_bundle = "/etc/ssl/certs/ca-certificates.crt"')
    untrusted_here = findings.registry("pypi.org", "verify", "self-signed", "verify",
                                       host_bundle="/etc/ssl/certs/ca-certificates.crt")
    assert untrusted_here.fix == CA_HINT
    mtu = findings.registry("pypi.org", "handshake", "timed out", "ok")
    assert "mtu" in mtu.fix
    both = findings.registry("pypi.org", "connect", "timed out", "connect")
    assert both.message == ("a build container cannot connect (timed out); this host cannot "
                            "either (cannot connect)")
    assert both.fix.startswith("check the server's outbound network")
    assert findings.registry("pypi.org", "ok", "", None).message == (
        "reachable from a build container")
    assert tlsreach.split_target("pypi.org") == ("pypi.org", 443)
    assert tlsreach.split_target("172.17.0.1:8443") == ("172.17.0.1", 8443)


def test_the_127_0_1_1_trap_and_other_dns_answers():
    trap = findings.dns("myapp.example.com", ["127.0.1.1"], {"203.0.113.7"})
    assert trap.level == "fail" and "127.0.1.1, a loopback address" in trap.message
    assert "/etc/hosts" in trap.fix
    assert findings.dns("a.example.com", [], {"203.0.113.7"}).level == "warn"
    elsewhere = findings.dns("a.example.com", ["198.51.100.9"], {"203.0.113.7"})
    assert elsewhere.level == "warn" and "not this server" in elsewhere.message
    assert findings.dns("a.example.com", ["203.0.113.7"], {"203.0.113.7"}).level == "ok"
    assert probes.resolve("localhost") and all(
        a in ("127.0.0.1", "::1") for a in probes.resolve("localhost"))


def test_an_aaaa_record_is_judged_like_an_a_record_but_fails():
    server = {"203.0.113.7", "2001:db8::7"}
    both = findings.dns("a.example.com", ["203.0.113.7", "2001:db8::7"], server)
    assert both.level == "ok"
    # The A record is right, the AAAA one leads elsewhere: IPv6 clients and Let's Encrypt
    # go there. (This was "ok" while any one address matched.)
    stray = findings.dns("a.example.com", ["203.0.113.7", "2001:db8::99"], server)
    assert stray.level == "fail" and "AAAA record (2001:db8::99)" in stray.message
    assert stray.fix == "point a.example.com's AAAA record at 2001:db8::7"
    no_ipv6 = findings.dns("a.example.com", ["203.0.113.7", "2001:db8::99"], {"203.0.113.7"})
    assert no_ipv6.level == "fail" and "this server has none" in no_ipv6.message
    assert no_ipv6.fix.startswith("remove a.example.com's AAAA record")
    ipv4_only = findings.dns("a.example.com", ["2001:db8::7"], server, ipv6_served=False)
    assert ipv4_only.level == "fail" and "listens on IPv4 only" in ipv4_only.message
    assert findings.dns("a.example.com", ["2001:db8::7"], server).level == "ok"  # AAAA only
    wrong_a = findings.dns("a.example.com", ["198.51.100.9", "2001:db8::7"], server)
    assert wrong_a.level == "warn" and "not this server" in wrong_a.message


def test_every_global_ipv6_address_of_the_host_is_its_own(tmp_path):
    table = tmp_path / "if_inet6"  # the kernel's format: address, ifindex, prefix, scope
    table.write_text(
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
        "20010db8000000000000000000000007 04 40 00 80     eth0\n"
        "20010db80000000000000000000000aa 04 40 00 01     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n")
    assert probes.ipv6_addresses(table) == {"2001:db8::7", "2001:db8::aa"}
    assert probes.ipv6_addresses(tmp_path / "absent") == set()  # a host without IPv6


def test_judgments():
    assert findings.disk("/var/lib/docker", 1 * GIB, 100 * GIB, 3 * GIB).level == "fail"
    assert findings.disk("/var/lib/docker", 6 * GIB, 100 * GIB, None).level == "warn"
    assert findings.disk("/var/lib/docker", 50 * GIB, 100 * GIB, None).level == "ok"
    assert findings.memory(100 * 1024 ** 2, GIB).level == "fail"
    assert findings.clock(-90.0, "acme").level == "fail"
    assert "behind acme" in findings.clock(-90.0, "acme").message
    assert findings.clock(0.4, "acme").level == "ok"
    certs = findings.certificates([
        {"app": "web", "domain": "a.example.com", "state": "failing", "last_error": "NXDOMAIN"},
        {"app": "web", "domain": "b.example.com", "state": "valid", "days_left": 3.2},
        {"app": "web", "domain": "c.example.com", "state": "valid", "days_left": 60}])
    assert [(f.level, f.subject) for f in certs] == [
        ("fail", "certificate a.example.com"), ("warn", "certificate b.example.com")]
    assert findings.firewall({"enabled": True, "active": False}).fix == "berth firewall:apply"
    on = {"enabled": True, "active": True, "live_digest": "ab12", "boot_ruleset": "/b.nft"}
    assert findings.firewall({**on, "boot_saved": True, "boot_digest": "ab12"}).level == "ok"
    assert "not saved for boot" in findings.firewall({**on, "boot_saved": False}).message
    stale = findings.firewall({**on, "boot_saved": True, "boot_digest": "cd34"})
    assert stale.level == "warn" and "not the one loaded now" in stale.message
    backups = findings.backups([
        {"name": "shop", "addons": 2, "backup_problems": [
            {"addon": "postgres", "problem": "failed", "detail": "pg_dump failed: disk full"},
            {"addon": "redis", "problem": "overdue", "detail": "no backup for more than a day"}]},
        {"name": "blog", "addons": 1, "backup_problems": []}])
    assert [(f.level, f.subject) for f in backups] == [
        ("fail", "backups shop postgres"), ("warn", "backups shop redis")]
    assert "disk full" in backups[0].message
    assert backups[0].fix == "see berth addons shop, then berth backups:capture shop postgres"
    assert findings.backups([{"name": "blog", "addons": 1}, {"name": "x"}]) == [
        findings.Finding("ok", "backups", "1 add-on(s), none failed or overdue")]
    assert findings.restarts(3).level == "warn"
    text = findings.render([findings.Finding("fail", "x", "broken", "do y")])
    assert text == "fail  x: broken\n      fix: do y\n"


class DownAgent:
    def apps(self) -> list[dict[str, Any]]:
        raise AgentUnavailable("the agent is not running")

    certificates = firewall = apps  # type: ignore[assignment]


class LocalAgent:
    def apps(self) -> list[dict[str, Any]]:
        return [{"name": "web", "domains": ["localhost"]}]

    def certificates(self) -> list[dict[str, Any]]:
        return []

    def firewall(self) -> dict[str, Any]:
        return {"enabled": False, "active": False}


def test_a_checkup_never_stops_on_a_broken_probe():
    found = {f.subject: f for f in checkup(Config(), DownAgent())}
    for subject in ("dns", "certificates", "firewall", "backups"):
        assert found[subject].level == "warn"
        assert found[subject].message == "could not check: the agent is not running"
    assert "memory" in found and "agent restarts" in found


def test_a_checkup_finds_an_app_domain_pointing_at_loopback():
    found = {f.subject: f for f in checkup(Config(), LocalAgent())}
    assert found["dns localhost"].level == "fail"
    assert found["firewall"].level == "warn"


def test_doctor_exits_1_on_a_failure(tmp_path):
    config = tmp_path / "berth.toml"
    config.write_text(f'[paths]\nrun_dir = "{tmp_path}/run"\n[proxy]\nhttp_port = 1\n'
                      'https_port = 2\nlisten = "127.0.0.1"\n')
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-m", "agent", "doctor"], capture_output=True, text=True,
                            env={"BERTH_CONFIG": str(config), "PYTHONPATH": str(repo),
                                 "PATH": "/usr/bin:/bin"}, timeout=120, cwd=repo, check=False)
    assert result.returncode == 1, result.stderr
    assert ("fail  ports: nothing answers for Berth on ports 1/2: the agent is not running"
            in result.stdout)


def test_who_answered_the_probe_judged():
    server = findings.ThisServer(["203.0.113.7"], ["198.51.100.1"], "start it with X")
    ok = findings.reached(80, "203.0.113.7", "shop.example.com", "this agent", "", server)
    assert (ok.level, ok.message) == ("ok", "shop.example.com reaches this server on 203.0.113.7")
    squatter = findings.reached(80, "203.0.113.7", None, "another server", "it answered 200 OK",
                                server)
    assert squatter.level == "fail" and "another server answers on 203.0.113.7:80" in (
        squatter.message) and "ss -ltnp" in squatter.fix
    down = findings.reached(443, "203.0.113.7", "shop.example.com", "nothing",
                            "Connection refused", server)
    assert down.message == "port 443 unreachable on 203.0.113.7 (Connection refused)"
    assert down.fix.startswith("the agent's proxy should answer there: start it with X")
    unproven = findings.reached(443, "203.0.113.7", None, "something", "no certificate yet "
                                "to prove whose it is", server)
    assert (unproven.level, unproven.message) == ("ok", "accepts connections on 203.0.113.7 "
                                                  "(no certificate yet to prove whose it is)")
    trap = findings.reached(80, "127.0.1.1", "shop.example.com", "this agent", "", server)
    assert trap.level == "warn" and "a loopback address: from this machine only" in trap.message
    nat = findings.reached(443, "198.51.100.1", "shop.example.com", "nothing", "timed out",
                           server)
    assert nat.level == "warn" and "NAT address" in nat.message
    assert nat.fix.startswith("check from outside: curl -I https://shop.example.com/")
    elsewhere = findings.reached(80, "192.0.2.9", "shop.example.com", "another server",
                                 "it answered 404 Not Found", server)
    assert elsewhere.fix == ("point shop.example.com's A/AAAA record at this server "
                             "(203.0.113.7, 198.51.100.1)")
