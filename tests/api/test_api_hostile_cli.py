"""The CLI's verbs driven with generated hostile arguments (lengths, unicode, numbers at
the limits) against the real control API on a real unix socket: every run ends in
success or one error line, never an internal error, and an error changes nothing."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.main import main
from agent.store.db import Database

EDGES = ["", " ", "-", "v", "v0", "0", "-1", "v-1", "v1", "1", "2147483647", "2147483648",
         "v99999999999999999999", "9" * 40, "\u00b2", "\u0661\u0662", "1e3", "0x10", "nan",
         "shop", "Shop", "shop-", "a" * 31, "web", "web=1", "A=1", "=", "==", "a.b",
         "shop.example.com", "victim.apps.example.test", "apps.example.test", "/data",
         "/app/../etc", "\u00e9t\u00e9", "\U0001f680", "x" * 300, "..", "%2e%2e", "\\",
         "$(id)", "'", '"', "\n", "a\nb", "\t", "\u202e", "\ud800"]

hostile = st.one_of(st.sampled_from(EDGES), st.text(max_size=40),
                    st.integers(min_value=-(2**70), max_value=2**70).map(str))
app = st.one_of(st.sampled_from(["shop", "ghost"]), hostile)
pair = st.tuples(hostile, hostile).map("=".join)

commands = st.one_of(
    st.tuples(st.just("apps:create"), hostile),
    st.tuples(st.just("apps:info"), app),
    st.tuples(st.just("apps:set"), app, pair),
    st.tuples(st.just("config:set"), app, pair, pair),
    st.tuples(st.just("config:set"), app, st.just("--encoded"), pair),
    st.tuples(st.just("config:set"), app, st.just("--no-restart"), pair),
    st.tuples(st.just("config:unset"), app, hostile),
    st.tuples(st.just("config:get"), app, hostile),
    st.tuples(st.just("domains:add"), app, hostile),
    st.tuples(st.just("domains:remove"), app, hostile),
    st.tuples(st.just("releases:info"), app, hostile),
    st.tuples(st.just("rollback"), app, hostile),
    st.tuples(st.just("ps:scale"), app, pair),
    st.tuples(st.just("storage:mount"), app, hostile, st.just("--no-restart")),
    st.tuples(st.just("storage:unmount"), app, hostile, st.just("--no-restart")),
    st.tuples(st.just("logs"), app, st.just("-n"), hostile),
    st.tuples(st.just("releases"), app),
).map(list)

TABLES = ("apps", "config_vars", "domains", "releases", "storage_mounts", "ssh_keys",
          "events")


def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    return {table: sorted(tuple(row) for row in db.query(f"SELECT * FROM {table}"))
            for table in TABLES}


def run(argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        status = main(argv, environ)
    return status, err.getvalue()


def test_hostile_arguments_get_one_line_and_change_nothing(
        agent_env: tuple[dict[str, str], Database]) -> None:
    environ, db = agent_env

    @settings(max_examples=400, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(commands)
    def check(argv: list[str]) -> None:
        before = snapshot(db)
        status, err = run(argv, environ)
        assert "internal error" not in err, (argv, err)
        assert "Traceback" not in err, (argv, err)
        if status != 0:
            assert err.count("\n") == 1 and err.startswith("error: "), (argv, err)
            assert snapshot(db) == before, argv

    check()
