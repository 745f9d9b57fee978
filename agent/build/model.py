"""The builder's values: what is asked (`BuildRequest`), what a buildpack decides
(`BuildPlan`), and what comes out (`BuiltImage` with its `BuildStep`s). No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Where things sit in the build context of a buildpack build: the pushed tree under
# `app/`, Berth's generated files (Dockerfile, CA trust, buildpack files) under `berth/`.
CONTEXT_SOURCE = "app"
CONTEXT_BERTH = "berth"


@dataclass(frozen=True)
class BuildRequest:
    app: str
    source: Path  # extracted tree of the pushed commit (git archive)
    tag: str  # e.g. "berth/myapp:v7"
    env: Mapping[str, str]  # the app's config vars (build-time knobs like DISABLE_COLLECTSTATIC)


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile instruction as the engine ran it."""

    number: int
    total: int
    instruction: str  # e.g. "RUN pip install -r requirements.txt"
    cached: bool  # the engine reused a layer ("Using cache")
    layer_id: str  # short id of the image after this step ("" if the build stopped here)


@dataclass(frozen=True)
class BuiltImage:
    image_id: str  # full "sha256:..." id
    tag: str
    builder: str  # "dockerfile" | "python" | "node" | "static" | a user buildpack's name
    # Process type -> shell command line, e.g. {"web": "gunicorn app:app --bind ..."};
    # {} for Dockerfile apps (the image's own CMD is the web process). A Procfile wins.
    default_processes: Mapping[str, str]
    duration: float  # seconds, detection to tagged image
    steps: tuple[BuildStep, ...] = ()


@dataclass(frozen=True)
class CodeBase:
    """Announced while a build runs, when its last step copies the pushed tree into
    /app: the image that step runs on (full id) and what the finished image will offer.
    The finished image is this image plus the tree, owned by the app user."""

    image: str
    builder: str
    default_processes: Mapping[str, str]


@dataclass(frozen=True)
class ContextFile:
    """A file Berth adds to the build context (under `berth/`)."""

    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class BuildPlan:
    """What a buildpack decided: the Dockerfile to build and what comes with it.

    `dockerfile` is None for apps with their own Dockerfile: the context is then the
    source tree as it is, built with its `Dockerfile`.
    """

    builder: str
    dockerfile: str | None
    files: Mapping[str, ContextFile] = field(default_factory=dict)  # context path -> file
    default_processes: Mapping[str, str] = field(default_factory=dict)
    buildargs: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # shown to the pusher under the detection heading
    # The Dockerfile already labels the image (berth.app, berth.builder) right after
    # FROM, where the label costs nothing on rebuilds and marks even a failed build's
    # leftover layers; otherwise the engine appends the labels as final steps.
    labelled: bool = False
