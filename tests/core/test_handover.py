"""The listening sockets passed from one agent to the next (`agent.handover`): the socket
activation variables read, and a real exec in place that keeps a socket listening, so a
connection made meanwhile is answered by the new program."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.handover import handover_environment, inherited_fds
from tests.conftest import ipv6_loopback

REPO = Path(__file__).resolve().parents[2]


def test_descriptors_for_this_process_start_at_3_with_their_names() -> None:
    environ = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:https"}
    assert inherited_fds(environ, 42) == [("http", 3), ("https", 4)]


def test_names_are_optional() -> None:
    assert inherited_fds({"LISTEN_PID": "42", "LISTEN_FDS": "2"}, 42) == [("", 3), ("", 4)]


def test_descriptors_meant_for_another_process_or_malformed_are_none() -> None:
    assert inherited_fds({"LISTEN_PID": "41", "LISTEN_FDS": "2"}, 42) == []
    assert inherited_fds({"LISTEN_FDS": "2"}, 42) == []
    assert inherited_fds({"LISTEN_PID": "42", "LISTEN_FDS": "two"}, 42) == []
    assert inherited_fds({"LISTEN_PID": "42", "LISTEN_FDS": "0"}, 42) == []
    assert inherited_fds({}, 42) == []


def test_the_environment_passed_on_replaces_older_variables() -> None:
    environ = {"PATH": "/bin", "LISTEN_PID": "1", "LISTEN_FDS": "5", "LISTEN_FDNAMES": "x"}
    assert handover_environment(environ, 7, ["http", "https"]) == {
        "PATH": "/bin", "LISTEN_PID": "7", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:https"}


# A program that takes its sockets as the agent does (logging to a file opened first, so
# that the file holds descriptor 3 before the exec), execs itself once keeping them, then
# answers one connection on the socket it was passed.
PROGRAM = textwrap.dedent("""
    import logging, os, sys
    from agent.handover import Listeners
    from agent.proxy.settings import ProxySettings
    logging.basicConfig(filename=os.environ["LOG"], level=logging.INFO)
    generation = int(os.environ.get("GENERATION", "0"))
    port = int(os.environ.get("PORT", "0"))
    listeners = Listeners.open(ProxySettings(listen="127.0.0.1", http_port=port, https_port=None))
    port = listeners.http.getsockname()[1]
    print(generation, port, "LISTEN_FDS" in os.environ, flush=True)
    if generation == 0:
        os.environ.update(GENERATION="1", PORT=str(port))
        sys.stdin.readline()  # the test has connected: exec with the connection queued
        listeners.reexec()
    listeners.http.setblocking(True)
    connection, _ = listeners.http.accept()
    connection.sendall(b"answered by generation %d" % generation)
    connection.close()
""")


def test_exec_in_place_keeps_the_socket_and_its_waiting_connections(tmp_path: Path) -> None:
    log = tmp_path / "program.log"
    with subprocess.Popen(
        [sys.executable, "-c", PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "LOG": str(log)}, text=True, cwd=REPO,
    ) as child:
        _exec_in_place(child)
    assert "restarting in place" in log.read_text()
    assert "taken over name=http" in log.read_text()


def _exec_in_place(child: subprocess.Popen[str]) -> None:
    try:
        assert child.stdout is not None and child.stdin is not None
        generation, port, variables = child.stdout.readline().split()
        assert (generation, variables) == ("0", "False")
        client = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["1", port, "False"]  # variables consumed
        with client:
            assert client.recv(100) == b"answered by generation 1"
        assert child.wait(20) == 0
    finally:
        child.kill()
        child.wait(10)


def test_a_passed_socket_on_another_port_than_the_settings_is_closed() -> None:
    program = textwrap.dedent("""
        import os, socket
        from agent.handover import Listeners
        from agent.proxy.settings import ProxySettings
        stray = socket.create_server(("127.0.0.1", 0))
        os.dup2(stray.fileno(), 3)
        environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}
        wanted = socket.create_server(("127.0.0.1", 0))
        port = wanted.getsockname()[1]
        wanted.close()
        listeners = Listeners.open(
            ProxySettings(listen="127.0.0.1", http_port=port, https_port=None), environ)
        print(listeners.http.getsockname()[1] == port, environ == {})
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30, cwd=REPO)
    assert result.stdout.split() == ["True", "True"], result.stderr


# Both listeners on the IPv6 any address, dual-stack: the exec in place keeps each with
# its IPv6 and IPv4 connections waiting in its backlog.
DUAL_STACK_PROGRAM = textwrap.dedent("""
    import logging, os, sys
    from agent.handover import Listeners
    from agent.proxy.settings import ProxySettings
    logging.basicConfig(filename=os.environ["LOG"], level=logging.INFO)
    generation = int(os.environ.get("GENERATION", "0"))
    http, https = (int(p) for p in os.environ.get("PORTS", "0 0").split())
    listeners = Listeners.open(ProxySettings(listen="::", http_port=http, https_port=https))
    assert listeners.https is not None
    ports = [listeners.http.getsockname()[1], listeners.https.getsockname()[1]]
    print(generation, *ports, flush=True)
    if generation == 0:
        os.environ.update(GENERATION="1", PORTS=" ".join(map(str, ports)))
        sys.stdin.readline()  # the test has connected: exec with the connections queued
        listeners.reexec()
    for name, sock in (("http", listeners.http), ("https", listeners.https)):
        sock.setblocking(True)
        for _ in range(2):
            connection, _ = sock.accept()
            connection.sendall(b"%s answered by generation %d" % (name.encode(), generation))
            connection.close()
""")


@pytest.mark.skipif(not ipv6_loopback(),
                    reason="this host has no IPv6 (no ::1 on lo): nothing to hand over on it")
def test_exec_in_place_keeps_both_families_on_both_listeners(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", DUAL_STACK_PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "LOG": str(tmp_path / "program.log")},
        text=True, cwd=REPO,
    ) as child:
        try:
            assert child.stdout is not None and child.stdin is not None
            generation, http, https = child.stdout.readline().split()
            assert generation == "0"
            waiting = {(name, host): socket.create_connection((host, int(port)), timeout=20)
                       for name, port in (("http", http), ("https", https))
                       for host in ("::1", "127.0.0.1")}
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().split() == ["1", http, https]
            for (name, _), client in waiting.items():
                with client:
                    assert client.recv(100) == f"{name} answered by generation 1".encode()
            assert child.wait(20) == 0
        finally:
            child.kill()
            child.wait(10)


@pytest.mark.skipif(not ipv6_loopback(),
                    reason="this host has no IPv6 (no ::1 on lo): an IPv4 socket misses nothing")
def test_an_ipv4_only_socket_from_an_older_agent_is_kept_and_said_to_miss_ipv6() -> None:
    program = textwrap.dedent("""
        import logging, os, socket, sys
        from agent.handover import Listeners
        from agent.proxy.settings import ProxySettings
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        older = socket.create_server(("127.0.0.1", 0))  # as an older Berth bound it
        port = older.getsockname()[1]
        if older.fileno() != 3:
            os.dup2(older.fileno(), 3)
        environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}
        listeners = Listeners.open(ProxySettings(http_port=port, https_port=None), environ)
        print(listeners.http.fileno() == 3, listeners.http.getsockname()[1] == port)
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=False, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30,
                            cwd=REPO)
    assert result.stdout.split() == ["True", "True"], result.stderr  # kept: nothing refused
    assert "passed socket http takes IPv4 only" in result.stderr
