"""User buildpacks: a directory of scripts adapted to the `Buildpack` contract.

The contract (also in buildpacks/README.md):
    NAME/bin/detect SOURCE      exit 0 = this app is mine (first stdout line says why),
                                exit 1 = not mine; any other exit is a broken buildpack
    NAME/bin/dockerfile SOURCE  prints the Dockerfile; the context holds the tree under
                                app/ and NAME/include/ under berth/buildpack/
    NAME/bin/processes SOURCE   optional: prints default processes, Procfile lines
    NAME/buildpack.toml         optional: name = "...", looks_for = "Cargo.toml"
Scripts run on the host as the agent's user with a fixed minimal environment (the app's
config vars are not passed), the source directory as their only argument, and a
deadline (build.script_timeout) that ends the script and whatever it started. They are the admin's code, installed by the admin; they
read the pushed tree as they like, so before the first one runs the whole tree is checked
(agent.treefile.check_tree): a link leaving it or a special file refuses the push.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

from agent import processgroup
from agent.build import ca
from agent.build.errors import BuildpackBroken
from agent.build.model import CONTEXT_BERTH, BuildPlan, ContextFile
from agent.build.packs import PlanOptions
from agent.build.source import SourceTree
from agent.names import PROCESS_TYPE_PATTERN

log = logging.getLogger(__name__)

SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_OUTPUT = 1024 * 1024
_PROCESS_LINE = re.compile(rf"^({PROCESS_TYPE_PATTERN}):\s*(\S.*)$")


class ScriptBuildpack:
    def __init__(self, directory: Path, name: str, looks_for: str, timeout: float) -> None:
        self.directory = directory
        self.name = name
        self.looks_for = looks_for
        self.timeout = timeout

    def detect(self, tree: SourceTree) -> str | None:
        result = self._run("detect", tree, {})
        if result.returncode == 1:
            return None
        if result.returncode != 0:
            raise BuildpackBroken(self.name, f"bin/detect exited {result.returncode}{_err(result)}")
        first = result.stdout.strip().splitlines()[:1]
        return first[0][:200] if first else self.name

    def plan(self, tree: SourceTree, options: PlanOptions) -> BuildPlan:
        env = {
            "BERTH_APP": options.app,
            "BERTH_CA_SETUP": "\n".join(ca.dockerfile_lines()) if options.trust_ca else "",
            "BERTH_WITH_CA": f"{ca.WITH_CA} " if options.trust_ca else "",
        }
        result = self._run("dockerfile", tree, env)
        if result.returncode != 0:
            raise BuildpackBroken(
                self.name, f"bin/dockerfile exited {result.returncode}{_err(result)}"
            )
        text = result.stdout
        if not re.search(r"^\s*FROM\s", text, re.MULTILINE | re.IGNORECASE):
            raise BuildpackBroken(self.name, "bin/dockerfile printed no Dockerfile (no FROM line)")
        processes: dict[str, str] = {}
        if (self.directory / "bin" / "processes").exists():
            listed = self._run("processes", tree, env)
            if listed.returncode != 0:
                raise BuildpackBroken(
                    self.name, f"bin/processes exited {listed.returncode}{_err(listed)}"
                )
            processes = parse_processes(listed.stdout, self.name)
        return BuildPlan(
            builder=self.name,
            dockerfile=text if text.endswith("\n") else text + "\n",
            files=include_files(self.directory / "include"),
            default_processes=processes,
            notes=(f"Using the {self.name} buildpack ({self.directory})",),
        )

    def _run(
        self, script: str, tree: SourceTree, extra: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        path = self.directory / "bin" / script
        tree.check_confined()  # the script reads what it likes: nothing may lead out
        env = {"PATH": SCRIPT_PATH, "LANG": "C.UTF-8", "HOME": str(self.directory), **extra}
        try:
            result = processgroup.run(
                [str(path), str(tree.root)],
                cwd=tree.root,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildpackBroken(
                self.name, f"bin/{script} took longer than {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise BuildpackBroken(self.name, f"cannot run bin/{script}: {exc.strerror}") from exc
        if len(result.stdout) > MAX_OUTPUT:
            raise BuildpackBroken(self.name, f"bin/{script} printed more than {MAX_OUTPUT} bytes")
        log.debug(
            "buildpack script ran buildpack=%s script=%s rc=%s",
            self.name,
            script,
            result.returncode,
        )
        return result


def _err(result: subprocess.CompletedProcess[str]) -> str:
    last = result.stderr.strip().splitlines()[-1:] if result.stderr else []
    return f": {last[0][:200]}" if last else ""


def parse_processes(text: str, buildpack: str) -> dict[str, str]:
    """Procfile-format lines (`type: command`) into a mapping (pure)."""
    processes = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PROCESS_LINE.match(line.strip())
        if not match:
            raise BuildpackBroken(buildpack, f"bin/processes line {number} is not 'type: command'")
        processes[match.group(1)] = match.group(2).strip()
    return processes


def include_files(directory: Path) -> dict[str, ContextFile]:
    """The buildpack's include/ directory, as context files under berth/buildpack/."""
    files: dict[str, ContextFile] = {}
    if not directory.is_dir():
        return files
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            relative = path.relative_to(directory).as_posix()
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            files[f"{CONTEXT_BERTH}/buildpack/{relative}"] = ContextFile(path.read_bytes(), mode)
    return files
