"""What a deploy reads from the pushed tree besides building it: the Procfile and
app.json, read once per push, and the formation they ask for.

Pure apart from `PushedTree.read`, which reads the two files (blocking, through
agent.treefile: call it in a worker thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent import treefile
from agent.appjson import AppJson, parse_app_json
from agent.deploy.plan import WEB, initial_formation
from agent.procfile import Procfile, parse_procfile
from agent.store.apps import App


@dataclass(frozen=True)
class PushedTree:
    """The pushed tree's Procfile and app.json (read once)."""

    procfile: Procfile
    app_json_text: str

    @classmethod
    def read(cls, source: Path) -> PushedTree:
        return cls(parse_procfile(_read_text(source, "Procfile")),
                   _read_text(source, "app.json"))

    def processes(self, defaults: Mapping[str, str]) -> dict[str, str]:
        """The builder's default process types, overridden by the Procfile's."""
        return {**defaults, **self.procfile.processes} or {WEB: ""}

    def origins(self, defaults: Mapping[str, str], builder: str) -> list[str]:
        """One line per process type: the command that will run and where it came from
        (the Procfile, the builder's default, or the image's CMD)."""
        lines = []
        for name, command in sorted(self.processes(defaults).items()):
            if name in self.procfile.processes:
                origin = "from the Procfile"
                if builder == "dockerfile" and name == WEB:
                    origin += ", not the Dockerfile's CMD"
            elif command:
                origin = f"the {builder} builder's default"
            else:
                command, origin = "the image's CMD", "no Procfile line for it"
            lines.append(f"{name}: {command} ({origin})")
        return lines

    def formation(self, app: App, processes: Mapping[str, str]) -> dict[str, int]:
        """The formation of the app once these process types run."""
        requested = _requested(app, parse_app_json(self.app_json_text))
        return initial_formation(processes, app.formation, requested)


def complete_formation(
    formation: Mapping[str, int], processes: Mapping[str, str]
) -> dict[str, int]:
    """`formation` with a count for every process type: web 1, the others 0."""
    complete = dict(formation)
    for process in processes:
        complete.setdefault(process, 1 if process == WEB else 0)
    return complete


def _requested(app: App, app_json: AppJson) -> Mapping[str, int]:
    """app.json's formation counts only on an app's first deploy."""
    return {} if app.formation else app_json.formation


def _read_text(source: Path, name: str) -> str:
    """A file of the pushed tree through agent.treefile ("" when absent); blocking."""
    return treefile.read_text(source, name) or ""
