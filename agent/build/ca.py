"""Trusting an extra CA bundle during builds (BuildSettings.ca_bundle).

Corporate proxies (and this project's test machines) intercept TLS, so installs inside a
build only reach PyPI or npm when they trust an extra CA. The bundle goes into the build
context under berth/ca/; a setup step joins it with the image's own roots into one
bundle, and install steps run through `with-ca`, which points every tool at it for that
command only (the running app is not affected).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from agent.build.dockerfile import shell_argv
from agent.build.errors import BuildError
from agent.build.model import CONTEXT_BERTH, ContextFile

CA_DIR = "/opt/berth/ca"
WITH_CA = f"{CA_DIR}/with-ca"

_SETUP = f"""#!/bin/sh
# Joins the image's trusted roots and Berth's extra CA bundle into {CA_DIR}/bundle.crt.
set -e
{{
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        cat /etc/ssl/certs/ca-certificates.crt
    elif command -v node >/dev/null 2>&1; then
        node -p "require('tls').rootCertificates.join('\\n')"
    fi
    cat {CA_DIR}/extra.crt
}} > {CA_DIR}/bundle.crt
chmod 0644 {CA_DIR}/bundle.crt
"""

_WITH_CA = f"""#!/bin/sh
# Runs one build command trusting Berth's extra CA bundle (build.ca_bundle).
bundle={CA_DIR}/bundle.crt
export SSL_CERT_FILE="$bundle" REQUESTS_CA_BUNDLE="$bundle" PIP_CERT="$bundle" \\
    CURL_CA_BUNDLE="$bundle" GIT_SSL_CAINFO="$bundle" npm_config_cafile="$bundle" \\
    NODE_EXTRA_CA_CERTS={CA_DIR}/extra.crt
exec "$@"
"""


def read_bundle(path: Path) -> bytes:
    """The PEM bundle at `path`, checked to hold at least one certificate."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"build.ca_bundle: cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise BuildError(f"build.ca_bundle: {path} holds no PEM certificate")
    return data if data.endswith(b"\n") else data + b"\n"


def context_files(bundle: bytes) -> dict[str, ContextFile]:
    base = f"{CONTEXT_BERTH}/ca"
    return {
        f"{base}/extra.crt": ContextFile(bundle),
        f"{base}/setup": ContextFile(_SETUP.encode(), 0o755),
        f"{base}/with-ca": ContextFile(_WITH_CA.encode(), 0o755),
    }


def dockerfile_lines() -> list[str]:
    """Instructions (run as root) that install the trust files into the image."""
    return [f"COPY {CONTEXT_BERTH}/ca/ {CA_DIR}/", f"RUN {CA_DIR}/setup"]


def wrap(command: str, trusted: bool) -> str:
    """`command` (shell syntax allowed) run through with-ca when an extra CA is trusted."""
    if not trusted:
        return command
    if len(shell_argv(command)[2]) == len(command):  # not one simple command
        return f"{WITH_CA} sh -c {shlex.quote(command)}"
    return f"{WITH_CA} {command}"
