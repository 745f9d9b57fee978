"""System libraries a Python app's dependencies need from the base image (pure).

Heroku's stack image carries libpq, so apps written for Heroku Postgres may depend on a
driver that links it: psycopg2 (no binary wheel: built from source against libpq, then
loaded at run time) or psycopg 3 without its `binary` extra (libpq loaded at run time).
The official `python:X-slim` images have neither libpq nor a compiler, so the buildpack
installs them, as root, before the dependencies: libpq at run time for both, and for
psycopg2 what building it needs (a C compiler, libpq's headers and pg_config, and the
Python headers when the image lacks them). Debian-based images use apt, Alpine apk.
"""

from __future__ import annotations

from dataclasses import dataclass

# Names as `python_deps.normalise` gives them.
_LINKS_LIBPQ = frozenset({"psycopg", "psycopg-c"})
_BUILDS_AGAINST_LIBPQ = frozenset({"psycopg2", "psycopg-c"})
_PYTHON_HEADERS = ('"$(python3 -c \'import sysconfig; print(sysconfig.get_paths()'
                   '["include"])\')/Python.h"')


@dataclass(frozen=True)
class NativeNeeds:
    """What the image needs for the app's dependencies: libpq at run time, and a
    toolchain to build against it."""

    libpq: bool = False
    build_libpq: bool = False

    @property
    def any(self) -> bool:
        return self.libpq or self.build_libpq

    def describe(self) -> str:
        if self.build_libpq:
            return "psycopg2 is built from source: installing libpq, its headers and a C compiler"
        return "psycopg links libpq: installing it"


def needs_of(packages: frozenset[str]) -> NativeNeeds:
    build = bool(packages & _BUILDS_AGAINST_LIBPQ)
    return NativeNeeds(libpq=build or bool(packages & _LINKS_LIBPQ), build_libpq=build)


def install_line(needs: NativeNeeds) -> str | None:
    """One RUN instruction (as root) installing what `needs` asks, or None."""
    if not needs.any:
        return None
    apt = ["libpq5"] + (["gcc", "libc6-dev", "libpq-dev"] if needs.build_libpq else [])
    apk = ["libpq"] + (["gcc", "musl-dev", "libpq-dev"] if needs.build_libpq else [])
    headers_apt = headers_apk = ""
    if needs.build_libpq:
        headers_apt = (f" && {{ [ -e {_PYTHON_HEADERS} ] || apt-get install -y -q"
                       " --no-install-recommends python3-dev; }")
        headers_apk = f" && {{ [ -e {_PYTHON_HEADERS} ] || apk add --no-cache python3-dev; }}"
    return (
        "RUN if command -v apt-get >/dev/null; then"
        " apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
        f" --no-install-recommends {' '.join(apt)}{headers_apt}"
        " && rm -rf /var/lib/apt/lists/*;"
        f" else apk add --no-cache {' '.join(apk)}{headers_apk}; fi"
    )
