"""What the tests of install.sh share besides fixtures: the environment that points the
installer into a temporary root (installing only: starting the agent on ports 80/443
with the firewall on would touch the machine's own network namespace), its shell
functions to run on their own, stand-ins for the commands that read the machine, and
releases cut by `.ci/release` and published over real HTTP."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "install.sh"


def installer_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of an install into ROOT, without starting anything."""
    return {**os.environ, **extra, "BERTH_PREFIX": str(root / "opt"),
            "BERTH_BIN_DIR": str(root / "bin"), "BERTH_CONFIG": str(root / "etc" / "berth.toml"),
            "BERTH_NO_START": "1"}


def functions(*names: str) -> str:
    """These shell functions of install.sh, to run on their own."""
    text = SCRIPT.read_text()
    found = []
    for name in names:
        match = re.search(rf"^{name}\(\) {{(?:[^\n]*}}$|.*?^}}$)", text, re.DOTALL | re.MULTILINE)
        assert match, name
        found.append(match.group(0))
    return "\n".join(found) + "\n"


def fake_command(directory: Path, name: str, body: str) -> None:
    """A stand-in for command NAME in DIRECTORY (put first on PATH): a /bin/sh script."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def run_shell(script: str, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """SCRIPT run by /bin/sh with ARGS as its positional parameters."""
    return subprocess.run(["/bin/sh", "-c", script, "install.sh", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@dataclass
class Published:
    """A static web server for DIRECTORY at BASE (http://ADDRESS:PORT); REQUESTS are the
    paths it was asked for, in order."""

    base: str
    directory: Path
    requests: list[str] = field(default_factory=list)


@contextmanager
def published(directory: Path, address: str) -> Iterator[Published]:
    """Serve DIRECTORY over HTTP on ADDRESS (a free port) until the block ends."""
    site = Published("", directory)

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), functools.partial(Handler, directory=str(directory)))
    site.base = f"http://{address}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def cut_release(checkout: Path, base_url: str, directory: Path) -> Path:
    """`.ci/release BASE_URL DIRECTORY` of CHECKOUT; the wheel it cut."""
    cut = subprocess.run([str(checkout / ".ci" / "release"), base_url, str(directory)],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert cut.returncode == 0, cut.stdout + cut.stderr
    (wheel,) = directory.glob("berth-*.whl")
    return wheel


def project_version(checkout: Path) -> str:
    """The version CHECKOUT's pyproject.toml says."""
    match = re.search(r'^version = "([^"]+)"$', (checkout / "pyproject.toml").read_text(),
                      re.MULTILINE)
    assert match, f"{checkout}/pyproject.toml has no version line"
    return match.group(1)


def later_checkout(directory: Path) -> str:
    """A git checkout in DIRECTORY of this one's tracked files with a later version
    (VERSION.post1 in pyproject.toml and agent/__init__.py): a release cut from it is an
    upgrade. The later version."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                           check=True, timeout=60).stdout
    tar = subprocess.run(["tar", "-C", str(REPO), "--null", "-T", "-", "-cf", "-"], input=files,
                         capture_output=True, check=True, timeout=60).stdout
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(directory), "-xf", "-"], input=tar, check=True, timeout=60)
    version = project_version(directory)
    later = version + ".post1"
    for path, line in ((directory / "pyproject.toml", 'version = "{}"'),
                       (directory / "agent" / "__init__.py", '__version__ = "{}"')):
        text = path.read_text()
        assert line.format(version) in text, f"{path.name} does not say version {version}"
        path.write_text(text.replace(line.format(version), line.format(later), 1))
    for git in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(directory), *git], check=True, capture_output=True,
                       timeout=60)
    return later


@dataclass(frozen=True)
class Releases:
    """Two releases served by SITE, at their base URLs: FIRST, this checkout as it is,
    and LATER, the same with version LATER_VERSION (an upgrade from FIRST)."""

    site: Published
    first: str
    first_version: str
    later: str
    later_version: str
