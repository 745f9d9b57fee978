"""A whole server backed up and brought back: two apps (one with a postgres add-on and
stored files, one with config vars and a redis add-on) are deployed, the archive is fetched over SSH, the
data directory, containers, images and networks are wiped, the agent starts empty, and
`berth restore` brings both back answering with their data. Real Docker, real postgres
(the stand-in image's), real pushes over real OpenSSH."""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path
from typing import Iterator

import docker
import pytest

from tests.e2e.conftest import ADDONS, APPS, DOMAIN, remove_leftovers, running_stack
from tests.e2e.harness import AgentProcess, GitUser

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

PREFIX = "e2e-srv-"  # the apps of this file, and only they, are wiped
SHOP, BLOG = f"{PREFIX}shop", f"{PREFIX}blog"
# The shop is built on the postgres stand-in image, for its psql client: it answers with
# a row of its database and a file of its persistent storage.
SHOP_DOCKERFILE = """FROM berth-stand-in/postgres:15
ENTRYPOINT []
WORKDIR /srv
COPY server.py .
CMD ["python3", "server.py"]
"""
SHOP_SERVER = """import http.server, os, subprocess

class Shop(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        rows = subprocess.run(["psql", os.environ["DATABASE_URL"], "-Atc",
                               "SELECT body FROM notes ORDER BY body"],
                              capture_output=True, text=True, timeout=10)
        try:
            stored = open("/app/data/note.txt").read().strip()
        except OSError as exc:
            stored = f"no file ({exc.strerror})"
        body = f"db={rows.stdout.strip() or rows.stderr.strip()} file={stored}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Shop).serve_forever()
"""
SEED = ("psql \"$DATABASE_URL\" -q -c \"CREATE TABLE notes (body text); "
        "INSERT INTO notes VALUES ('kept-in-postgres')\" && "
        "echo kept-in-storage > /app/data/note.txt")
WANTED_SHOP = b"db=kept-in-postgres file=kept-in-storage\n"
WANTED_BLOG = b"restored greeting from a Dockerfile\n"


@pytest.fixture(scope="module")
def stack(e2e_root: Path) -> Iterator[tuple[AgentProcess, GitUser]]:
    with running_stack(e2e_root, extra=ADDONS) as started:
        yield started
        for app in (SHOP, BLOG):  # add-ons first, or the app's network stays in use
            started[0].cli("apps:destroy", app, "--confirm", app)
        remove_leftovers(PREFIX)  # whatever a failed test left


def _answer(agent: AgentProcess, app: str, wanted: bytes, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    body = b""
    while time.monotonic() < deadline:
        try:
            status, body = agent.get(f"{app}.{DOMAIN}")
        except OSError:
            status = 0
        if status == 200 and body == wanted:
            return body
        time.sleep(0.25)
    return body


def _deploy_both(agent: AgentProcess, developer: GitUser) -> None:
    agent.ok("apps:create", SHOP)
    agent.ok("addons:create", SHOP, "postgres")
    agent.ok("storage:mount", SHOP, "/app/data")
    shop = developer.repo(APPS / "dockerfile", SHOP)
    shop.write("Dockerfile", SHOP_DOCKERFILE)
    shop.write("server.py", SHOP_SERVER)
    shop.commit("the shop reads its database and its stored file")
    shop.push()
    agent.ok("run", SHOP, "--", SEED)
    agent.ok("apps:create", BLOG)
    agent.ok("addons:create", BLOG, "redis")
    assert _redis(agent, "SET", "visits", "42") == "OK"
    blog = developer.repo(APPS / "dockerfile", BLOG)
    blog.push()
    agent.ok("config:set", BLOG, "GREETING=restored greeting")
    assert _answer(agent, SHOP, WANTED_SHOP) == WANTED_SHOP
    assert _answer(agent, BLOG, WANTED_BLOG) == WANTED_BLOG


def _redis(agent: AgentProcess, *command: str) -> str:
    """A command to the blog's redis, with the password of its REDIS_URL."""
    url = agent.ok("config:get", BLOG, "REDIS_URL").strip()
    password = url.split(":")[2].split("@")[0]
    client = docker.from_env()
    try:
        container = client.containers.get(f"berth-addon-{BLOG}-redis")
        result = container.exec_run(["redis-cli", "--no-auth-warning", "-a", password,
                                     *command])
    finally:
        client.close()
    return result.output.decode().strip()


def _wipe(agent: AgentProcess) -> None:
    """The server loses its disk: agent stopped, data directory, containers, images and
    networks of the apps gone; then a freshly installed (empty) agent starts."""
    agent.stop()
    remove_leftovers(PREFIX)
    shutil.rmtree(agent.root / "data")
    agent.start()


def test_a_wiped_server_comes_back_from_its_archive(stack, tmp_path: Path) -> None:
    agent, developer = stack
    _deploy_both(agent, developer)
    fetched = developer.ssh("backup", timeout=300)  # an admin key, streamed over SSH
    assert fetched.returncode == 0, fetched.stderr.decode()
    assert b"-----> Capturing postgres of e2e-srv-shop" in fetched.stderr
    archive = tmp_path / "server.tar"
    archive.write_bytes(fetched.stdout)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == "manifest.json" and "state/berth.db" in names
    assert f"repos/{SHOP}.git/HEAD" in names and "config/berth.toml" in names
    assert any(n.startswith(f"backups/{SHOP}/b1-postgres") for n in names)

    _wipe(agent)
    assert agent.ok("apps", "--json").strip() == "[]"
    agent.ok("keys:add", "dev", stdin=developer.public_key)  # as the installer would
    restored = developer.ssh("restore -", stdin=archive.read_bytes(), timeout=600)
    said = restored.stdout.decode() + restored.stderr.decode()
    assert restored.returncode == 0, f"{said}\n{agent.log_tail()}"
    assert "Restored 2 app(s) and 2 add-on(s)" in said
    assert _answer(agent, SHOP, WANTED_SHOP) == WANTED_SHOP
    assert _answer(agent, BLOG, WANTED_BLOG) == WANTED_BLOG
    assert _redis(agent, "GET", "visits") == "42"
    # The keys came back with the state: the developer pushes again as before.
    assert developer.ssh(f"config:get {BLOG} GREETING").stdout == b"restored greeting\n"

    again = agent.cli("restore", str(archive))
    assert again.returncode == 1
    assert again.stderr.startswith("error: this server has apps (")
    assert "pass --force to replace them" in again.stderr


def test_an_app_key_may_not_back_up_the_server(stack, tmp_path: Path) -> None:
    agent, _ = stack
    limited = GitUser(tmp_path, stack[1].ssh_port)
    agent.ok("keys:add", "shop-only", "--apps", SHOP, stdin=limited.public_key)
    refused = limited.ssh("backup")
    assert refused.returncode == 1 and refused.stdout == b""
    assert b"this needs an admin key" in refused.stderr
