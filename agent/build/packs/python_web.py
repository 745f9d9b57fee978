"""The default `web` command of a Python app without a Procfile, and why.

gunicorn when it is a dependency and a WSGI app is found (Django's PROJECT.wsgi), uvicorn
for an ASGI app when uvicorn is (or an extra such as `fastapi[standard]` brings it), else
`python FILE.py` only for an entry file that runs something when started (an
`if __name__ == "__main__":` block or a top-level call such as `app.run()`,
`main()` or `serve(...)`): a module
that only defines an app would exit at once. Each choice comes with its reason, shown
in the build output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.build.source import SourceTree
from agent.treefile import TreeFileRefused

_SETTINGS_MODULE = re.compile(r"DJANGO_SETTINGS_MODULE['\"]\s*,\s*['\"]([\w.]+)\.settings['\"]")
_WSGI_APP = re.compile(r"^(\w+)\s*=\s*(?:[\w.]+\.)?(Flask|Bottle|Falcon|App|API)\(", re.MULTILINE)
_ASGI_APP = re.compile(
    r"^(\w+)\s*=\s*(?:[\w.]+\.)?(FastAPI|Starlette|Quart|Litestar)\(", re.MULTILINE
)
_FACTORY = re.compile(r"^def (create_app|make_app)\(\)", re.MULTILINE)
# What makes `python FILE.py` a server rather than a module that exits at once: a main
# block, or a call at the top level (`app.run(...)`, `main()`, `uvicorn.run(...)`).
_RUNS = re.compile(
    r"^(?:if\s+__name__\s*==\s*['\"]__main__['\"]"
    r"|(?:[A-Za-z_]\w*\.)*(?:run|run_app|run_simple|serve|serve_forever|main|start|listen)\s*\()",
    re.MULTILINE,
)


def django_project(tree: SourceTree) -> str:
    """The module that holds settings.py/wsgi.py ("" when it cannot be told)."""
    manage = tree.read_text("manage.py") or ""
    named = _SETTINGS_MODULE.search(manage)
    if named:
        return named.group(1)
    for name in tree.names():
        try:
            if tree.is_file(f"{name}/wsgi.py") and tree.is_file(f"{name}/settings.py"):
                return name
        except TreeFileRefused:
            continue  # a link out of the tree among the entries: not the project
    return ""


@dataclass(frozen=True)
class WebDefault:
    """The default web command, or None, and the reason shown to the pusher."""

    command: str | None
    reason: str


def default_web(tree: SourceTree, packages: frozenset[str], django: str | None) -> WebDefault:
    """The web command when there is no Procfile (see the module's docstring)."""
    if "gunicorn" in packages:
        if django:
            wsgi = f"{django}.wsgi"
            if tree.is_file(wsgi.replace(".", "/") + ".py"):
                return WebDefault(f"gunicorn {wsgi} --bind 0.0.0.0:$PORT",
                                  f"gunicorn is a dependency; Django's {wsgi}")
        target = _find_app(tree, _WSGI_APP, ("wsgi", "app", "application", "main", "server"))
        if target:
            return WebDefault(f"gunicorn {target} --bind 0.0.0.0:$PORT",
                              f"gunicorn is a dependency; WSGI app {target}")
    asgi = _find_app(tree, _ASGI_APP, ("main", "app", "asgi", "server"))
    if asgi and "uvicorn" in packages:
        return WebDefault(f"uvicorn {asgi} --host 0.0.0.0 --port $PORT",
                          f"uvicorn is a dependency; ASGI app {asgi}")
    for entry in ("app.py", "main.py", "server.py"):
        text = tree.read_text(entry) if tree.is_file(entry) else None
        if text is not None and _RUNS.search(text):
            return WebDefault(f"python {entry}", f"{entry} runs something when started")
    if asgi:
        return WebDefault(None, f"ASGI app {asgi} found, but no server to run it: add "
                          "uvicorn (or fastapi[standard]) to the dependencies, or a Procfile")
    return WebDefault(None, "no app found to run: add a Procfile (web: ...) or gunicorn "
                      "to the dependencies")


def _find_app(tree: SourceTree, pattern: re.Pattern[str], modules: tuple[str, ...]) -> str | None:
    for module in modules:
        text = tree.read_text(f"{module}.py")
        if text is None:
            continue
        found = pattern.search(text)
        if found:
            return f"{module}:{found.group(1)}"
        if module == "wsgi" and re.search(r"^application\s*=", text, re.MULTILINE):
            return "wsgi:application"
        factory = _FACTORY.search(text)
        if factory:
            return f"'{module}:{factory.group(1)}()'"
    return None


