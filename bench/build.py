"""Benchmark: Berth's code-only rebuild next to a raw `docker build` of the same thing.

For each sample (flask, express, static) Berth plans the build once; the exact context
it would send (generated Dockerfile, CA files, the app under app/) is also written to a
directory, so the anchor is the docker CLI building the very same Dockerfile and files.
Then both rebuild after a code-only change, alternating, N times; the script prints the
median of each and the ratio Berth / raw. Both use the engine's classic builder (what
docker-py drives; this machine's docker CLI has no buildx, so BuildKit is not compared).

    PYTHONPATH=. python3 bench/build.py [--rounds 7] [--apps flask,express,static]

Needs dockerd, the stand-in image (tests/support/stand-in-images.sh) and, for the
installs of the first (uncounted) build, the host's CA bundle.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker  # type: ignore[import-untyped]

from agent.build import Builder, BuildRequest, BuildSettings
from agent.build.context import dockerfile_path, write_context

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = os.environ.get("BERTH_STAND_IN_TAG", "berth-stand-in/bookworm:1")
TAG = "berth-bench-build"


def settings() -> BuildSettings:
    return BuildSettings(
        python_image=STAND_IN,
        node_image=STAND_IN,
        static_image=STAND_IN,
        ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"),
        min_free_disk_mb=256,
    )


def touch_code(source: Path, mark: str) -> None:
    """A code-only change: a comment appended to one source file."""
    for name in ("app.py", "server.js", "index.html"):
        path = source / name
        if path.exists():
            marker = (
                "<!-- {} -->"
                if name.endswith(".html")
                else "// {}"
                if name.endswith(".js")
                else "# {}"
            )
            path.write_text(path.read_text() + "\n" + marker.format(mark) + "\n")
            return
    raise SystemExit(f"no code file to touch in {source}")


def raw_context(builder: Builder, request: BuildRequest, into: Path) -> str:
    """Unpack Berth's context for `request` into `into`; the Dockerfile path inside."""
    plan, _ = builder.plan(request)
    buffer = io.BytesIO()
    write_context(plan, request.source, buffer)
    buffer.seek(0)
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(into, filter="tar")
    return dockerfile_path(plan)


def raw_build(context: Path, dockerfile: str, tag: str) -> float:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    subprocess.run(
        ["docker", "build", "-q", "-f", str(context / dockerfile), "-t", tag, str(context)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - started


async def berth_build(builder: Builder, request: BuildRequest) -> float:
    started = time.monotonic()
    await builder.build(request, lambda line: None)
    return time.monotonic() - started


def bench_app(client: docker.DockerClient, app: str, rounds: int, work: Path) -> None:
    source = work / app
    shutil.copytree(ROOT / "tests" / "apps" / app, source)
    builder = Builder(settings(), client)
    request = BuildRequest(app=app, source=source, tag=f"{TAG}/{app}:berth", env={})
    # Warm-up (uncounted): dependencies installed once for each path.
    asyncio.run(berth_build(builder, request))
    dockerfile = raw_context(builder, request, work / f"{app}-raw")
    raw_build(work / f"{app}-raw", dockerfile, f"{TAG}/{app}:raw")

    berth, raw = [], []
    for number in range(rounds):
        # Distinct changes for each side, so neither reuses the other's code layer.
        touch_code(source, f"raw {number}")
        dockerfile = raw_context(builder, request, work / f"{app}-raw")
        raw.append(raw_build(work / f"{app}-raw", dockerfile, f"{TAG}/{app}:raw"))
        touch_code(source, f"berth {number}")
        berth.append(asyncio.run(berth_build(builder, request)))
    b, r = statistics.median(berth), statistics.median(raw)
    print(
        f"{app:8} code-only rebuild   berth {b:5.2f} s   raw docker build {r:5.2f} s"
        f"   ratio {b / r:4.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--apps", default="flask,express,static")
    args = parser.parse_args()
    client = docker.from_env(timeout=600)
    try:
        with tempfile.TemporaryDirectory(prefix="berth-bench-build-") as work:
            print(f"median of {args.rounds} code-only rebuilds, same Dockerfile and context")
            for app in args.apps.split(","):
                bench_app(client, app, args.rounds, Path(work))
    finally:
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(f"{TAG}/"):
                    client.images.remove(tag, force=True)
        client.close()


if __name__ == "__main__":
    main()
