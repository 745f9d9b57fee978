"""Builds' records of their step images, and which recorded images may go: only those
still unnamed that no image builds on, never a tagged base, never another's parent."""

from __future__ import annotations

from pathlib import Path

from agent.build.steplog import EngineImage, StepRecord, forget, recorded, records, removable


def full(digit: str) -> str:
    return "sha256:" + digit * 64


def short(digit: str) -> str:
    return digit * 12


BASE = EngineImage(full("b"), "", named=True)
STEP1 = EngineImage(full("1"), full("b"), named=False)
STEP2 = EngineImage(full("2"), full("1"), named=False)


def test_a_killed_builds_chain_goes_leaf_first_and_the_base_stays() -> None:
    chosen = removable([short("b"), short("1"), short("2")], [BASE, STEP1, STEP2])
    assert chosen == [full("2"), full("1")]


def test_an_image_another_builds_on_stays() -> None:
    other = EngineImage(full("3"), full("1"), named=False)  # another build's step on STEP1
    chosen = removable([short("1"), short("2")], [BASE, STEP1, STEP2, other])
    assert chosen == [full("2")]


def test_a_tagged_or_digested_image_stays_even_when_childless() -> None:
    release = EngineImage(full("2"), full("1"), named=True)
    assert removable([short("1"), short("2")], [BASE, STEP1, release]) == []


def test_unrecorded_images_stay() -> None:
    assert removable([short("1")], [BASE, STEP1, STEP2]) == []  # STEP2 builds on it
    assert removable([short("2")], [BASE, STEP1, STEP2]) == [full("2")]  # its parent stays


def test_short_or_ambiguous_ids_name_nothing() -> None:
    twin = EngineImage("sha256:" + "2" * 12 + "f" * 52, full("1"), named=False)
    assert removable(["2" * 12], [BASE, STEP1, STEP2, twin]) == []
    assert removable(["2" * 6], [BASE, STEP1, STEP2]) == []
    assert removable([full("2")], [BASE, STEP1, STEP2, twin]) == [full("2")]


def test_a_record_is_kept_until_the_build_succeeds(tmp_path: Path) -> None:
    failed = StepRecord(tmp_path, "shop")
    failed.add(short("1"))
    failed.add_container("c" * 12)
    failed.add(short("2"))
    done = StepRecord(tmp_path, "shop")
    done.add(short("3"))
    done.succeeded()
    kept = records(tmp_path, "shop")
    assert kept == [failed.path]
    assert recorded(kept) == ([short("1"), short("2")], ["c" * 12])
    assert records(tmp_path, "other") == []
    forget(kept)
    assert records(tmp_path, "shop") == [] and not (tmp_path / "shop").exists()


def test_no_directory_records_nothing(tmp_path: Path) -> None:
    record = StepRecord(None, "shop")
    record.add(short("1"))
    record.succeeded()
    assert record.path is None and list(tmp_path.iterdir()) == []
