"""Shared Dockerfile pieces: how commands run, what may be named in a COPY."""

from __future__ import annotations

import pytest

from agent.build import ca
from agent.build.dockerfile import copy_dependency_files, copyable, env, shell_argv


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (
            "gunicorn app:app --bind 0.0.0.0:$PORT",
            ["/bin/sh", "-c", "exec gunicorn app:app --bind 0.0.0.0:$PORT"],
        ),
        ("npm start", ["/bin/sh", "-c", "exec npm start"]),
        ("./migrate && ./serve", ["/bin/sh", "-c", "./migrate && ./serve"]),
        ("FOO=1 python x.py", ["/bin/sh", "-c", "FOO=1 python x.py"]),
        ("exec python x.py", ["/bin/sh", "-c", "exec python x.py"]),
        ("python x.py > log", ["/bin/sh", "-c", "python x.py > log"]),
    ],
)
def test_shell_argv(command: str, argv: list[str]) -> None:
    assert shell_argv(command) == argv


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("requirements.txt", True),
        ("reqs/base.txt", True),
        ("../x", False),
        ("a/../../x", False),
        ("req[1].txt", False),
        ("with space.txt", False),
        ("*.txt", False),
        ("/abs", False),
    ],
)
def test_copyable(path: str, ok: bool) -> None:
    assert copyable(path) is ok


def test_copy_dependency_files_groups_by_directory() -> None:
    assert copy_dependency_files(["a.txt", "b.txt", "sub/c.txt"]) == [
        'COPY --chown=berth:berth ["app/a.txt", "app/b.txt", "./"]',
        'COPY --chown=berth:berth ["app/sub/c.txt", "./sub/"]',
    ]


def test_env_quotes_what_needs_it() -> None:
    assert env({"A": "1", "PATH": "/v/bin:$PATH", "B": "two words"}) == (
        'ENV A=1 \\\n    PATH=/v/bin:$PATH \\\n    B="two words"'
    )


def test_ca_wrap() -> None:
    assert ca.wrap("pip install x", False) == "pip install x"
    assert ca.wrap("pip install x", True) == "/opt/berth/ca/with-ca pip install x"
    assert ca.wrap("a > f && b", True) == "/opt/berth/ca/with-ca sh -c 'a > f && b'"


def test_ca_bundle_must_hold_a_certificate(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from agent.build.errors import BuildError

    path = Path(str(tmp_path)) / "bundle.pem"
    path.write_text("not a cert")
    with pytest.raises(BuildError, match="holds no PEM certificate"):
        ca.read_bundle(path)
    with pytest.raises(BuildError, match="cannot read"):
        ca.read_bundle(path.with_name("missing.pem"))
