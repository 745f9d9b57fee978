"""A release as a user meets it: `.ci/release` cuts the wheel and the install.sh pinned to
it (URL and SHA-256), a real HTTP server on loopback publishes them, and the README's one
line, `curl -fsSL URL/install.sh | sh -s -- ...`, run outside any checkout, installs Berth
from that wheel; a tampered wheel is refused before anything changes."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.install.harness import functions, installer_env, run_shell

REPO = Path(__file__).resolve().parents[2]
ONE_LINE = 'curl -fsSL "$1/install.sh" | sh -s -- --domain apps.example.com --no-start'

pytestmark = [pytest.mark.slow]


@dataclass
class Published:
    """A release cut into DIRECTORY and served at BASE; REQUESTS are the paths asked for."""

    base: str
    directory: Path
    requests: list[str] = field(default_factory=list)

    @property
    def wheel(self) -> Path:
        (wheel,) = self.directory.glob("berth-*.whl")
        return wheel


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    directory = tmp_path_factory.mktemp("release")
    requests: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        published = Published(f"http://127.0.0.1:{server.server_address[1]}/berth/0.1",
                              directory / "berth" / "0.1", requests)
        cut = subprocess.run([str(REPO / ".ci" / "release"), published.base,
                              str(published.directory)], capture_output=True, text=True,
                             timeout=300, env={"PATH": "/usr/bin:/bin",
                                               "PYTHON": sys.executable})
        assert cut.returncode == 0, cut.stdout + cut.stderr
        yield published
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def one_line(root: Path, published: Published) -> subprocess.CompletedProcess[str]:
    """The README's install line, run from a directory that is no checkout of Berth."""
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    env = installer_env(root, TMPDIR=str(root / "tmp"))
    env.pop("BERTH_NO_START")  # the flag says it
    return subprocess.run(["sh", "-c", ONE_LINE, "sh", published.base], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=900)


def test_the_release_pins_its_wheel_and_its_sha256(release: Published):
    script = (release.directory / "install.sh").read_text()
    digest = hashlib.sha256(release.wheel.read_bytes()).hexdigest()
    assert f'\nRELEASE_URL="{release.base}/{release.wheel.name}"\n' in script
    assert f'\nRELEASE_SHA256="{digest}"\n' in script
    assert (release.directory / "SHA256SUMS").read_text() == f"{digest}  {release.wheel.name}\n"
    rest = script.replace(f'"{release.base}/{release.wheel.name}"', '""').replace(
        f'"{digest}"', '""')
    assert rest == (REPO / "install.sh").read_text()  # nothing else differs


def test_the_one_line_installs_the_released_wheel(target: Path, release: Published):
    result = one_line(target, release)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "git push deploy main" in result.stdout
    assert release.requests[-2:] == ["/berth/0.1/install.sh", f"/berth/0.1/{release.wheel.name}"]
    (record,) = (target / "opt" / "venv" / "lib").glob("python3*/site-packages/berth-*.dist-info")
    origin = json.loads((record / "direct_url.json").read_text())
    assert origin["url"].endswith("/" + release.wheel.name) and "archive_info" in origin
    version = subprocess.run([str(target / "bin" / "berth"), "--version"], capture_output=True,
                             text=True, cwd="/")
    assert version.returncode == 0 and version.stdout.startswith("berth "), version.stderr
    assert list((target / "tmp").iterdir()) == []  # the download went with the install


def test_a_tampered_wheel_is_refused_before_anything_changes(target: Path, release: Published):
    wheel = release.wheel
    kept = target / "kept.whl"
    shutil.copy(wheel, kept)
    try:
        with zipfile.ZipFile(wheel, "a") as tampered:  # still a wheel pip would install
            tampered.writestr("agent/sitecustomize.py", "print('owned')\n")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        result = one_line(target, release)
    finally:
        shutil.copy(kept, wheel)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"install.sh: {release.base}/{wheel.name} has SHA-256 {digest}, not the release's ")
    assert result.stderr.endswith(": refusing to install it\n")
    assert sorted(path.name for path in target.iterdir()) == ["elsewhere", "kept.whl", "tmp"]
    assert list((target / "tmp").iterdir()) == []


@pytest.mark.parametrize("args, refusal", [
    ([], "usage: .ci/release BASE_URL OUTDIR"),
    (["downloads.example.com/berth", "out"],
     "BASE_URL downloads.example.com/berth: expected an http://, https:// or file:// URL"),
    (["https://example.com/a b", "out"], "BASE_URL https://example.com/a b: characters a URL "
                                          "must escape"),
])
def test_a_bad_release_command_is_one_line(tmp_path: Path, args: list[str], refusal: str):
    result = subprocess.run([str(REPO / ".ci" / "release"), *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"release: {refusal}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_is_one_line(release: Published, tmp_path: Path):
    script = functions("say", "note", "die", "read_settings", "resolve_source", "download",
                       "verify_sha256") + "read_settings; SHA256= SOURCE=$1; resolve_source"
    missing = f"{release.base}/berth-9.9.9-py3-none-any.whl"
    result = run_shell(script, missing, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"install.sh: cannot download {missing}: The requested URL returned error: 404\n")
    assert list(tmp_path.iterdir()) == []  # the download's directory went too
