"""The python buildpack's pure parts: reading the tree and rendering the Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.build.errors import InvalidSource
from agent.build.packs import PlanOptions
from agent.build.packs.python import PythonBuildpack, PythonProject, inspect, python_version, render
from agent.build.settings import BuildSettings
from agent.build.source import SourceTree


def tree(tmp_path: Path, files: dict[str, str]) -> SourceTree:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return SourceTree(tmp_path)


def options(**env: str) -> PlanOptions:
    return PlanOptions(app="demo", settings=BuildSettings(), env=env)


def lines_of(dockerfile: str | None) -> list[str]:
    assert dockerfile is not None
    return dockerfile.splitlines()


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"requirements.txt": "flask\n"}, "requirements.txt"),
        ({"Pipfile": "[packages]\n"}, "Pipfile"),
        ({"pyproject.toml": "[project]\nname='x'\n"}, "pyproject.toml"),
        ({"setup.cfg": ""}, None),
    ],
)
def test_detects_python_by_manifest(
    tmp_path: Path, files: dict[str, str], reason: str | None
) -> None:
    assert PythonBuildpack().detect(tree(tmp_path, files)) == reason


@pytest.mark.parametrize(
    ("files", "manager", "dependency_files"),
    [
        ({"requirements.txt": "flask\n", "Pipfile": ""}, "pip", ("requirements.txt",)),
        (
            {"Pipfile": "[packages]\nflask='*'\n", "Pipfile.lock": "{}"},
            "pipenv",
            ("Pipfile", "Pipfile.lock"),
        ),
        (
            {"pyproject.toml": "[tool.poetry]\nname='x'\n", "poetry.lock": ""},
            "poetry",
            ("pyproject.toml", "poetry.lock"),
        ),
        (
            {"pyproject.toml": "[project]\nname='x'\n", "uv.lock": ""},
            "uv",
            ("pyproject.toml", "uv.lock"),
        ),
        ({"pyproject.toml": "[project]\nname='x'\ndependencies=['flask']\n"}, "pyproject", ()),
    ],
)
def test_manager_follows_the_files(
    tmp_path: Path, files: dict[str, str], manager: str, dependency_files: tuple[str, ...]
) -> None:
    project = inspect(tree(tmp_path, files), "3.12")
    assert project.manager == manager
    assert project.dependency_files == dependency_files


def test_version_from_python_version_then_runtime_txt(tmp_path: Path) -> None:
    t = tree(tmp_path, {"runtime.txt": "python-3.11.9\n"})
    assert python_version(t, "3.12") == ("3.11.9", "runtime.txt")
    (tmp_path / ".python-version").write_text("# pinned\n3.13\n")
    assert python_version(t, "3.12") == ("3.13", ".python-version")
    assert python_version(tree(tmp_path / "empty", {"x": ""}), "3.12") == ("3.12", "default")


@pytest.mark.parametrize(
    ("name", "text"), [(".python-version", "pypy3.10\n"), ("runtime.txt", "python-3.x\n")]
)
def test_unusable_version_is_one_clear_error(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(InvalidSource) as caught:
        python_version(tree(tmp_path, {name: text}), "3.12")
    assert str(caught.value).startswith(f"{name}: ")


def test_requirement_includes_are_copied_before_the_install(tmp_path: Path) -> None:
    t = tree(
        tmp_path,
        {
            "requirements.txt": "-r reqs/base.txt\n--index-url https://example.org/simple\ngunicorn  # web\n",
            "reqs/base.txt": "-c constraints.txt\nFlask[async]>=3 ; python_version>'3'\n",
            "reqs/constraints.txt": "werkzeug<4\n",
        },
    )
    project = inspect(t, "3.12")
    assert project.dependency_files == ("requirements.txt", "reqs/base.txt", "reqs/constraints.txt")
    assert {"gunicorn", "flask", "werkzeug"} <= project.packages
    lines = lines_of(render(project, options()).dockerfile)
    copies = [line for line in lines if line.startswith("COPY --chown")]
    assert copies == [
        'COPY --chown=berth:berth ["app/requirements.txt", "./"]',
        'COPY --chown=berth:berth ["app/reqs/base.txt", "app/reqs/constraints.txt", "./reqs/"]',
        'COPY --chown=berth:berth ["app/", "./"]',
    ]


def test_missing_or_escaping_include_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSource, match="missing"):
        inspect(tree(tmp_path / "a", {"requirements.txt": "-r nope.txt\n"}), "3.12")
    with pytest.raises(InvalidSource, match="outside the repository"):
        inspect(tree(tmp_path / "b", {"requirements.txt": "-r ../../etc/passwd\n"}), "3.12")


def test_dependency_layer_comes_before_the_code(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": "flask\n", "app.py": ""}), "3.12")
    lines = lines_of(render(project, options()).dockerfile)
    install = lines.index("RUN pip install -r requirements.txt")
    assert lines[install - 1] == 'COPY --chown=berth:berth ["app/requirements.txt", "./"]'
    assert lines.index('COPY --chown=berth:berth ["app/", "./"]') > install


def test_editable_self_install_copies_the_tree_first(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": "-e .\nflask\n"}), "3.12")
    assert project.needs_source
    lines = lines_of(render(project, options()).dockerfile)
    assert lines.index('COPY --chown=berth:berth ["app/", "./"]') < lines.index(
        "RUN pip install -r requirements.txt"
    )


def test_base_image_template_and_version(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": "", ".python-version": "3.11\n"}), "3.12")
    assert "FROM python:3.11-slim" in lines_of(render(project, options()).dockerfile)
    custom = PlanOptions("demo", BuildSettings(python_image="registry.local/py:{version}"), {})
    assert "FROM registry.local/py:3.11" in lines_of(render(project, custom).dockerfile)


def test_runs_as_unprivileged_user_with_venv(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": ""}), "3.12")
    lines = lines_of(render(project, options()).dockerfile)
    assert "USER berth" in lines
    assert lines.index("USER berth") < lines.index("RUN python3 -m venv /opt/venv")
    assert any("PORT=5000" in line for line in lines)


def test_ca_trust_wraps_only_install_steps(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": "flask\n", "app.py": ""}), "3.12")
    trusted = PlanOptions("demo", BuildSettings(), {}, trust_ca=True)
    lines = lines_of(render(project, trusted).dockerfile)
    assert "COPY berth/ca/ /opt/berth/ca/" in lines
    assert "RUN /opt/berth/ca/with-ca pip install -r requirements.txt" in lines
    assert not any("with-ca" in line for line in lines if line.startswith("CMD"))
    plain = lines_of(render(project, options()).dockerfile)
    assert not any("berth/ca" in line for line in plain)


@pytest.mark.parametrize(
    ("files", "web"),
    [
        (
            {
                "requirements.txt": "gunicorn\nflask\n",
                "app.py": "from flask import Flask\napp = Flask(__name__)\n",
            },
            "gunicorn app:app --bind 0.0.0.0:$PORT",
        ),
        (
            {"requirements.txt": "gunicorn\n", "wsgi.py": "application = make()\n"},
            "gunicorn wsgi:application --bind 0.0.0.0:$PORT",
        ),
        (
            {"requirements.txt": "gunicorn\n", "app.py": "def create_app():\n    pass\n"},
            "gunicorn 'app:create_app()' --bind 0.0.0.0:$PORT",
        ),
        (
            {"requirements.txt": "uvicorn\nfastapi\n", "main.py": "api = fastapi.FastAPI()\n"},
            "uvicorn main:api --host 0.0.0.0 --port $PORT",
        ),
        (
            {"requirements.txt": "requests\n",
             "main.py": "def main():\n    serve()\n\nif __name__ == '__main__':\n    main()\n"},
            "python main.py",
        ),
        ({"requirements.txt": "aiohttp\n", "app.py": "app = make()\nweb.run_app(app)\n"},
         "python app.py"),
        # A module that only prints or defines things would exit at once: no default.
        ({"requirements.txt": "requests\n", "main.py": "print(1)\n"}, None),
        ({"requirements.txt": "requests\n"}, None),
        # Extras are dependencies: fastapi[standard] brings uvicorn.
        (
            {"requirements.txt": "fastapi[standard]>=0.110\n",
             "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"},
            "uvicorn main:app --host 0.0.0.0 --port $PORT",
        ),
        (
            {"requirements.txt": "fastapi[all]==0.115\n",
             "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"},
            "uvicorn main:app --host 0.0.0.0 --port $PORT",
        ),
        (
            {"pyproject.toml": "[project]\nname='x'\ndependencies=['fastapi[standard,cli]']\n",
             "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"},
            "uvicorn main:app --host 0.0.0.0 --port $PORT",
        ),
        (
            {"Pipfile": "[packages]\nfastapi = {extras = ['standard'], version = '*'}\n",
             "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"},
            "uvicorn main:app --host 0.0.0.0 --port $PORT",
        ),
    ],
)
def test_default_web_process(tmp_path: Path, files: dict[str, str], web: str | None) -> None:
    project = inspect(tree(tmp_path, files), "3.12")
    plan = render(project, options())
    assert plan.default_processes == ({"web": web} if web else {})
    if web is None:
        assert any("Procfile" in note for note in plan.notes)
    else:
        assert any(note.startswith(f"Default web process: {web} (") for note in plan.notes)


def test_plain_fastapi_gets_no_default_that_would_exit_and_says_why(tmp_path: Path) -> None:
    files = {"requirements.txt": "fastapi\n",
             "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}
    plan = render(inspect(tree(tmp_path, files), "3.12"), options())
    assert plan.default_processes == {}
    assert ("No default web process: ASGI app main:app found, but no server to run it: add "
            "uvicorn (or fastapi[standard]) to the dependencies, or a Procfile") in plan.notes


DJANGO = {
    "requirements.txt": "Django>=5\ngunicorn\n",
    "manage.py": "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_x.settings')\n",
    "site_x/settings.py": "",
    "site_x/wsgi.py": "application = get_wsgi_application()\n",
}


def test_django_gets_collectstatic_after_the_code_and_gunicorn(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, DJANGO), "3.12")
    assert project.django_project == "site_x"
    plan = render(project, options(SECRET_KEY="s3cret", PATH="/evil", DISABLE_COLLECTSTATIC="0"))
    lines = lines_of(plan.dockerfile)
    collect = lines.index("RUN python manage.py collectstatic --noinput")
    assert lines.index('COPY --chown=berth:berth ["app/", "./"]') < collect
    # Config vars reach the collectstatic step only, as build arguments; PATH never.
    assert "ARG SECRET_KEY" in lines[:collect] and "ARG PATH" not in lines
    assert plan.buildargs["SECRET_KEY"] == "s3cret" and "PATH" not in plan.buildargs
    assert plan.default_processes == {"web": "gunicorn site_x.wsgi --bind 0.0.0.0:$PORT"}


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_disable_collectstatic_config_var(tmp_path: Path, value: str) -> None:
    plan = render(inspect(tree(tmp_path, DJANGO), "3.12"), options(DISABLE_COLLECTSTATIC=value))
    assert "collectstatic" not in (plan.dockerfile or "")
    assert plan.buildargs == {}
    assert "Django app: collectstatic disabled" in plan.notes


def test_collectstatic_setting_and_build_time_config_switch(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, DJANGO), "3.12")
    off = PlanOptions("demo", BuildSettings(collectstatic=False), {})
    assert "collectstatic" not in (render(project, off).dockerfile or "")
    private = PlanOptions("demo", BuildSettings(config_vars_at_build=False), {"SECRET_KEY": "x"})
    plan = render(project, private)
    assert "collectstatic --noinput" in (plan.dockerfile or "") and plan.buildargs == {}


def test_manage_py_without_django_is_not_django(tmp_path: Path) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": "flask\n", "manage.py": ""}), "3.12")
    assert project.django_project is None


def test_each_manager_installs_from_its_dependency_files(tmp_path: Path) -> None:
    cases = {
        "pipenv": ({"Pipfile": "[packages]\n", "Pipfile.lock": "{}"}, "pipenv requirements"),
        "poetry": (
            {"pyproject.toml": "[tool.poetry]\n", "poetry.lock": ""},
            "poetry install --only main --no-root",
        ),
        "uv": (
            {"pyproject.toml": "[project]\nname='x'\n", "uv.lock": ""},
            "uv sync --frozen --no-dev --no-install-project",
        ),
    }
    for manager, (files, command) in cases.items():
        project = inspect(tree(tmp_path / manager, files), "3.12")
        lines = lines_of(render(project, options()).dockerfile)
        install = next(i for i, line in enumerate(lines) if command in line)
        assert install < lines.index('COPY --chown=berth:berth ["app/", "./"]'), manager
        assert any(
            line.startswith("RUN python3 -m venv /opt/berth/tools") for line in lines[:install]
        )


def test_pep621_dependencies_go_to_a_generated_requirements_file(tmp_path: Path) -> None:
    files = {"pyproject.toml": "[project]\nname='x'\ndependencies=['flask>=3', 'gunicorn']\n"}
    plan = render(inspect(tree(tmp_path, files), "3.12"), options())
    assert plan.files["berth/python/requirements.txt"].content == b"flask>=3\ngunicorn\n"
    assert "RUN pip install -r /opt/berth/requirements.txt" in lines_of(plan.dockerfile)


def test_bad_toml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidSource, match="^pyproject.toml: not valid TOML"):
        inspect(tree(tmp_path, {"pyproject.toml": "[project\n"}), "3.12")


def test_render_is_pure_and_stable() -> None:
    project = PythonProject(
        manager="pip",
        manifest="requirements.txt",
        dependency_files=("requirements.txt",),
        version="3.12",
        version_source="default",
        packages=frozenset({"gunicorn"}),
        web="gunicorn app:app --bind 0.0.0.0:$PORT",
    )
    first = render(project, options())
    assert first == render(project, options())
    # The code's COPY is the last step (a push rebuilds one layer), the CMD just before it.
    assert first.dockerfile is not None and first.dockerfile.endswith(
        'CMD ["/bin/sh", "-c", "exec gunicorn app:app --bind 0.0.0.0:$PORT"]\n'
        'COPY --chown=berth:berth ["app/", "./"]\n'
    )


@pytest.mark.parametrize(
    ("requirements", "installed", "note"),
    [
        ("psycopg2==2.9.10\n", "libpq5 gcc libc6-dev libpq-dev", "psycopg2 is built from source"),
        ("psycopg[pool]>=3.1\n", "libpq5 &&", "psycopg links libpq"),
        ("psycopg2-binary\nflask\n", None, None),
    ],
)
def test_postgres_drivers_that_link_libpq_get_it_as_on_heroku(
    tmp_path: Path, requirements: str, installed: str | None, note: str | None
) -> None:
    project = inspect(tree(tmp_path, {"requirements.txt": requirements}), "3.12")
    plan = render(project, options())
    lines = lines_of(plan.dockerfile)
    system = [line for line in lines if "apt-get install" in line]
    if installed is None:
        assert system == [] and not any("libpq" in n for n in plan.notes)
        return
    assert len(system) == 1 and f"--no-install-recommends {installed}" in system[0]
    # As root, before the dependencies are installed as the app's user.
    assert lines.index(system[0]) < lines.index("USER berth")
    assert any(n.startswith(note or "") for n in plan.notes)
