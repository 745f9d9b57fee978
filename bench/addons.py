#!/usr/bin/env python3
"""Add-on benchmark: create-to-usable, a 1 GB capture and restore next to pg_dump and
pg_restore run by hand, and the agent's RSS with add-ons.

Run as root on a machine prepared by tests/run (Docker engine, sshd, the `berth` user,
the stand-in images, the test virtualenv):

    /opt/berth-test/venv/bin/python bench/addons.py [--size-mb 1024] [--rounds 3]

It starts a real agent (the end-to-end test harness) and measures, in the same run:
  1. `addons:create APP postgres` until the app's network reaches the database with
     DATABASE_URL (a query over TLS from a client container on the app's network), the
     median of 5;
  2. the agent's RSS at rest with 10 apps deployed and 10 add-ons (target under 80 MB);
  3. a postgres add-on filled to --size-mb: `backups:capture` against
     `docker exec CONTAINER pg_dump -Fc > FILE` by hand, and `backups:restore` against
     `docker exec -i CONTAINER pg_restore ... < FILE` by hand (the same flags as Berth's:
     one transaction, clean first) and against the same pg_restore reading the dump from
     a file inside the container ("hand-file", as Berth's reads it), taking turns,
     medians of --rounds, their ratios (target within 1.1x) and the dumps' sizes; the
     rows are counted after each restore.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deploy import rss_mb
from tests.e2e.conftest import APPS, make_agent
from tests.e2e.harness import AgentProcess, GitUser, SshServer, world_readable_tempdir

ADDONS = """
[addons]
postgres_image = "berth-stand-in/postgres:{version}"
redis_image = "berth-stand-in/redis:{version}"
postgres_version = "15"
"""
CLIENT_IMAGE = "berth-stand-in/postgres:15"
BENCH_LABEL = "berth.bench=addons"
# About 200 bytes a row with its index; md5 text compresses about as well as real text.
FILL = ("INSERT INTO items (id, name, body, amount, at) SELECT g, md5(g::text), "
        "md5((g * 7)::text) || ' ' || md5((g * 13)::text) || ' ' || md5((g * 31)::text), "
        "(g % 100000) / 100.0, now() - g * interval '1 second' "
        "FROM generate_series({start}, {stop}) AS g")
CHUNK_ROWS = 500_000
INSIDE = "/tmp/hand.dump"  # the hand dump copied into the add-on's container


def docker(*argv: str, timeout: float = 3600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True,
                          timeout=timeout, **kwargs)  # type: ignore[call-overload]


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


@dataclass
class Figures:
    create: list[float] = field(default_factory=list)  # addons:create returned
    usable: list[float] = field(default_factory=list)  # first query with DATABASE_URL
    rss: float = 0.0
    rss_after: float = 0.0
    database_mb: float = 0.0
    rows: int = 0
    capture: dict[str, list[float]] = field(default_factory=lambda: {"berth": [], "hand": []})
    restore: dict[str, list[float]] = field(
        default_factory=lambda: {"berth": [], "hand": [], "hand-file": []})
    sizes: dict[str, int] = field(default_factory=dict)


class Bench:
    def __init__(self, agent: AgentProcess, user: GitUser) -> None:
        self.agent, self.user = agent, user
        self.app = f"bench-db-{secrets.token_hex(3)}"
        self.container = f"berth-addon-{self.app}-postgres"
        self.client = f"bench-client-{secrets.token_hex(3)}"

    def deploy(self, app: str) -> None:
        pushed = self.user.repo(APPS / "dockerfile", app).push()
        assert "is live" in pushed.stdout + pushed.stderr, pushed.stderr

    def start_client(self) -> None:
        """A psql container on the app's network, as the app's instances are."""
        web = docker("ps", "-q", "--filter", f"label=berth.app={self.app}").stdout.split()[0]
        networks = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                     web).stdout)
        docker("run", "-d", "--rm", "--name", self.client, "--label", BENCH_LABEL,
               "--network", next(iter(networks)), "--entrypoint", "sleep", CLIENT_IMAGE,
               "infinity")

    def create_to_usable(self, rounds: int, figures: Figures) -> None:
        for i in range(rounds):
            started = time.monotonic()
            self.agent.ok("addons:create", self.app, "postgres")
            figures.create.append(time.monotonic() - started)
            url = self.agent.ok("config:get", self.app, "DATABASE_URL").strip()
            deadline = started + 120
            while subprocess.run(["docker", "exec", self.client, "psql",
                                  f"{url}?sslmode=require", "-Atc", "SELECT 1"],
                                 capture_output=True, timeout=60, check=False).returncode:
                assert time.monotonic() < deadline, "DATABASE_URL never became usable"
                time.sleep(0.05)
            figures.usable.append(time.monotonic() - started)
            if i < rounds - 1:
                self.agent.ok("addons:destroy", self.app, "postgres", "--confirm", self.app,
                              "--no-backup")

    def more_apps(self, count: int) -> None:
        """count more apps, each with an add-on (redis and postgres in turn)."""
        for i in range(count):
            app = f"bench-app{i}-{secrets.token_hex(2)}"
            self.deploy(app)
            self.agent.ok("addons:create", app, "redis" if i % 2 == 0 else "postgres")

    def psql_inside(self, sql: str) -> str:
        user = self.app.replace("-", "_")
        return docker("exec", "-u", "postgres", self.container, "psql", "-U", user, "-d", user,
                      "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout.strip()

    def fill(self, size_mb: int, figures: Figures) -> None:
        self.psql_inside("CREATE TABLE items (id bigint PRIMARY KEY, name text, body text, "
                         "amount numeric, at timestamptz)")
        rows = 0
        while self.database_mb() < size_mb:
            self.psql_inside(FILL.format(start=rows + 1, stop=rows + CHUNK_ROWS))
            rows += CHUNK_ROWS
            print(f"  filled {rows} rows, {self.database_mb():.0f} MB", flush=True)
        self.psql_inside("VACUUM ANALYZE items")
        figures.rows, figures.database_mb = rows, self.database_mb()

    def database_mb(self) -> float:
        user = self.app.replace("-", "_")
        return int(self.psql_inside(f"SELECT pg_database_size('{user}')")) / 2**20

    def count(self) -> int:
        return int(self.psql_inside("SELECT count(*) FROM items"))

    def hand_capture(self, target: Path) -> None:
        user = self.app.replace("-", "_")
        with target.open("wb") as sink:
            subprocess.run(["docker", "exec", "-u", "postgres", self.container, "pg_dump",
                            "-Fc", "-U", user, "-d", user], stdout=sink, check=True,
                           timeout=3600)

    def pg_restore(self, *source: str) -> list[str]:
        user = self.app.replace("-", "_")
        return ["docker", "exec", "-i", "-u", "postgres", self.container, "pg_restore",
                "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
                "--no-owner", "-U", user, "-d", user, *source]

    def hand_restore(self, source: Path) -> None:
        """As one types it: the dump fed through `docker exec -i`."""
        with source.open("rb") as feed:
            subprocess.run(self.pg_restore(), stdin=feed, check=True, timeout=3600)

    def hand_restore_file(self) -> None:
        """From a file inside the container (copied there beforehand, untimed), as
        Berth's restore reads the backup where it lies."""
        subprocess.run(self.pg_restore(INSIDE), check=True, timeout=3600)

    def berth_capture(self) -> None:
        self.agent.ok("backups:capture", self.app, "postgres", timeout=3600)

    def latest_backup(self) -> dict[str, object]:
        return dict(json.loads(self.agent.ok("backups", self.app, "--json"))[-1])

    def berth_restore(self, backup_id: str) -> None:
        self.agent.ok("backups:restore", self.app, backup_id, "--confirm", self.app,
                      timeout=3600)

    def capture_and_restore(self, root: Path, rounds: int, figures: Figures) -> None:
        """Hand and Berth in turn (who goes first alternates), the same data each time."""
        hand_dump = root / "hand.dump"
        for i in range(rounds):
            pair = [("hand", lambda: self.hand_capture(hand_dump)), ("berth", self.berth_capture)]
            for who, action in pair if i % 2 == 0 else pair[::-1]:
                figures.capture[who].append(timed(action))
                print(f"  capture {i + 1}, {who}: {figures.capture[who][-1]:.1f} s", flush=True)
            backup = self.latest_backup()
            figures.sizes = {"hand": hand_dump.stat().st_size, "berth": int(str(backup["size"]))}
            docker("cp", str(hand_dump), f"{self.container}:{INSIDE}")
            docker("exec", self.container, "chmod", "644", INSIDE)
            restores = [("hand", lambda: self.hand_restore(hand_dump)),
                        ("hand-file", self.hand_restore_file),
                        ("berth", lambda b=str(backup["id"]): self.berth_restore(b))]
            for who, action in restores[i % 3:] + restores[:i % 3]:
                figures.restore[who].append(timed(action))
                assert self.count() == figures.rows, f"{who}'s restore lost rows"
                print(f"  restore {i + 1}, {who}: {figures.restore[who][-1]:.1f} s", flush=True)
            docker("exec", self.container, "rm", "-f", INSIDE)
            self.forget_backups()

    def forget_backups(self) -> None:
        """Each round's backup file goes, so the disk holds one at a time."""
        for row in json.loads(self.agent.ok("backups", self.app, "--json")):
            Path(str(row["path"])).unlink(missing_ok=True)


def measure(agent: AgentProcess, user: GitUser, root: Path, args: argparse.Namespace
            ) -> Figures:
    figures = Figures()
    bench = Bench(agent, user)
    try:
        bench.deploy(bench.app)
        bench.start_client()
        print("create to usable", flush=True)
        bench.create_to_usable(args.creates, figures)
        bench.more_apps(args.apps - 1)
        time.sleep(5)
        assert agent.process is not None
        figures.rss = rss_mb(agent.process.pid)
        print(f"filling {bench.app}'s database to {args.size_mb} MB", flush=True)
        bench.fill(args.size_mb, figures)
        bench.capture_and_restore(root, args.rounds, figures)
        time.sleep(5)
        figures.rss_after = rss_mb(agent.process.pid)
    finally:
        subprocess.run(["docker", "rm", "-f", bench.client], capture_output=True, check=False)
    return figures


def ratio_line(what: str, times: dict[str, list[float]], anchor: str = "hand") -> str:
    berth, hand = statistics.median(times["berth"]), statistics.median(times[anchor])
    spread = ", ".join(f"{b / h:.2f}" for b, h in zip(times["berth"], times[anchor]))
    return (f"{what} (median of {len(times['berth'])}): berth {berth:6.1f} s, {anchor} "
            f"{hand:6.1f} s -> {berth / hand:.2f}x (per round {spread}; target <= 1.1x)")


def report(args: argparse.Namespace, figures: Figures) -> None:
    create, usable = statistics.median(figures.create), statistics.median(figures.usable)
    print(f"addons:create to DATABASE_URL usable (median of {len(figures.usable)}): "
          f"{usable:.2f} s (range {min(figures.usable):.2f}-{max(figures.usable):.2f}; "
          f"the command returned after {create:.2f} s)")
    print(f"agent RSS at rest, {args.apps} apps and {args.apps} add-ons: {figures.rss:.1f} MB; "
          f"after the captures and restores: {figures.rss_after:.1f} MB (target < 80 MB)")
    print(f"database: {figures.database_mb:.0f} MB on disk, {figures.rows} rows")
    print(ratio_line("capture", figures.capture))
    print(ratio_line("restore", figures.restore))
    print(ratio_line("restore", figures.restore, "hand-file"))
    hand, berth = figures.sizes["hand"], figures.sizes["berth"]
    print(f"dump size: berth {berth / 2**20:.1f} MiB, by hand {hand / 2**20:.1f} MiB "
          f"-> {berth / hand:.3f}x")


@contextmanager
def bench_stack(root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    """The end-to-end harness's agent, sshd and developer, without its cleanup (which
    removes every e2e-* container: the end-to-end tests' own, if they are running)."""
    agent = make_agent(root, extra=ADDONS)
    agent.start()
    sshd = SshServer(root, root / "ssh" / "authorized_keys")
    try:
        sshd.start()
        (root / "developer").mkdir(exist_ok=True)
        user = GitUser(root / "developer", sshd.port)
        agent.ok("keys:add", "dev", stdin=user.public_key)
        yield agent, user
    finally:
        sshd.stop()
        agent.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=5)
    parser.add_argument("--apps", type=int, default=10)
    args = parser.parse_args()
    root = world_readable_tempdir("berth-bench-addons-")
    try:
        with bench_stack(root) as (agent, user):
            try:
                figures = measure(agent, user, root, args)
            finally:
                remove_bench_apps(agent)
            report(args, figures)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def remove_bench_apps(agent: AgentProcess) -> None:
    """Every app of the run with its add-ons (no final backup), networks and images."""
    for row in json.loads(agent.ok("apps", "--json")):
        name = str(row["name"])
        for addon in json.loads(agent.ok("addons", name, "--json")):
            agent.cli("addons:destroy", name, str(addon["name"]), "--confirm", name, "--no-backup")
        agent.cli("apps:destroy", name, "--confirm", name)
    images = docker("images", "-q", "--filter", "reference=berth/bench-*").stdout.split()
    if images:
        subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True, check=False)


if __name__ == "__main__":
    raise SystemExit(main())
