"""The route table and the balancer (pure: no sockets)."""

from __future__ import annotations

import pytest

from agent.proxy.errors import HostTaken, RouteNotFound
from agent.proxy.model import RouteOptions, Upstream
from agent.proxy.routes import RouteTable, least_loaded

A, B, C = Upstream("127.0.0.1", 5001), Upstream("127.0.0.1", 5002), Upstream("127.0.0.1", 5003)


def test_lookup_exact_before_wildcard() -> None:
    table = RouteTable()
    table.set("wild", ["*.example.com"], [A], RouteOptions())
    table.set("www", ["www.example.com"], [B], RouteOptions())
    assert table.lookup("www.example.com").name == "www"  # type: ignore[union-attr]
    assert table.lookup("api.example.com").name == "wild"  # type: ignore[union-attr]
    assert table.lookup("example.com") is None
    assert table.lookup("a.b.example.com") is None


def test_set_replaces_hosts_and_reports_dropped_targets() -> None:
    table = RouteTable()
    table.set("app", ["a.test", "b.test"], [A, B], RouteOptions())
    kept = table.get("app").targets[0]
    dropped = table.set("app", ["b.test"], [A, C], RouteOptions(hsts=True))
    assert [t.upstream for t in dropped] == [B]
    assert table.get("app").targets[0] is kept  # unchanged upstreams keep their pools
    assert table.lookup("a.test") is None and table.get("app").options.hsts


def test_conflicts_leave_the_table_unchanged() -> None:
    table = RouteTable()
    table.set("one", ["a.test"], [A], RouteOptions())
    with pytest.raises(HostTaken):
        table.set("two", ["b.test", "a.test"], [B], RouteOptions())
    assert table.lookup("b.test") is None
    with pytest.raises(RouteNotFound):
        table.get("two")


def test_swap_and_remove() -> None:
    table = RouteTable()
    table.set("app", ["a.test"], [A], RouteOptions())
    dropped = table.swap("app", [B])
    assert [t.upstream for t in dropped] == [A]
    assert [t.upstream for t in table.get("app").targets] == [B]
    table.remove("app")
    assert table.lookup("a.test") is None
    table.tally("app")  # counters outlive the route
    with pytest.raises(RouteNotFound):
        table.swap("app", [A])


def test_least_loaded_prefers_fewest_in_flight_and_rotates_ties() -> None:
    table = RouteTable()
    table.set("app", ["a.test"], [A, B, C], RouteOptions())
    targets = table.get("app").targets
    targets[0].in_flight, targets[1].in_flight, targets[2].in_flight = 3, 1, 2
    assert least_loaded(targets, 0) is targets[1]
    for t in targets:
        t.in_flight = 0
    assert {least_loaded(targets, turn).upstream for turn in range(3)} == {A, B, C}
