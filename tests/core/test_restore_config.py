"""berth.toml from a server archive: put in place only when the agent could start with
it on the restored data; otherwise left beside this server's, which stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.serverbackup.configfile import put_back

OURS = '[paths]\ndata_dir = "{data}"\n\n[deploy]\ndomain = "new.example.test"\n'


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    data = tmp_path / "data"
    current = tmp_path / "etc" / "berth.toml"
    current.parent.mkdir()
    current.write_text(OURS.format(data=data))
    current.chmod(0o640)
    return tmp_path / "archived.toml", current, data


def test_the_same_file_changes_nothing(files) -> None:
    archived, current, data = files
    archived.write_bytes(current.read_bytes())
    restored = put_back(archived, current, data)
    assert not restored.replaced and restored.said is None
    assert sorted(p.name for p in current.parent.iterdir()) == ["berth.toml"]


def test_another_file_replaces_it_and_the_previous_is_kept(files) -> None:
    archived, current, data = files
    before = current.read_text()
    archived.write_text(OURS.format(data=data).replace("new.example", "old.example"))
    restored = put_back(archived, current, data)
    assert restored.replaced and "berth.toml.before-restore" in (restored.said or "")
    assert current.read_text() == archived.read_text()
    assert (current.parent / "berth.toml.before-restore").read_text() == before
    assert current.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(("text", "says"), [
    ("[deploy\ndomain = 1\n", "not valid TOML"),
    ("[deploy]\nhealth_timeout = \"soon\"\n", "not a configuration"),
    ('[paths]\ndata_dir = "/srv/elsewhere"\n', "puts data_dir at /srv/elsewhere"),
    (None, "not UTF-8"),
])
def test_one_the_agent_must_not_start_with_is_left_beside_it(files, text, says) -> None:
    archived, current, data = files
    before = current.read_bytes()
    if text is None:
        archived.write_bytes(b"[deploy]\ndomain = \"\xff\"\n")
    else:
        archived.write_text(text)
    restored = put_back(archived, current, data)
    assert not restored.replaced and says in (restored.said or ""), restored.said
    assert current.read_bytes() == before
    assert (current.parent / "berth.toml.from-archive").read_bytes() == archived.read_bytes()
    assert not (current.parent / "berth.toml.before-restore").exists()
