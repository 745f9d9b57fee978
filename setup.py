"""Packaging glue that pyproject.toml cannot say: hooks/ and buildpacks/ live at the top
of the repository (for people to read and edit) and are copied into the package, under
agent/_shipped/, when a wheel is built, so that an installed Berth finds them."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("hooks", "buildpacks")
ROOT = Path(__file__).resolve().parent


class BuildWithShippedFiles(build_py):
    """build_py that also copies the shipped directories into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the checkout itself
        for name in SHIPPED:
            target = Path(self.build_lib) / "agent" / "_shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithShippedFiles})
