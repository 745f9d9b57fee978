"""The test suite's own layout: test modules are imported by their file name (no
packages), so two with the same name in different directories stop the whole run at
collection. Caught here, in a directory every quick check runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_file_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
