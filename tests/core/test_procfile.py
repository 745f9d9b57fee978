import pytest

from agent.procfile import ProcfileError, parse_procfile


def test_types_commands_and_release_are_separated():
    procfile = parse_procfile(
        "# comment\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n"
        "worker:python worker.py\nrelease: python manage.py migrate\n"
    )
    assert procfile.processes == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT",
        "worker": "python worker.py",
    }
    assert procfile.release == "python manage.py migrate"


def test_colons_inside_the_command_are_kept():
    assert parse_procfile("web: sh -c 'echo a:b'").processes == {"web": "sh -c 'echo a:b'"}


@pytest.mark.parametrize("text, problem", [
    ("web gunicorn", "expected 'type: command'"),
    ("web:", "has no command"),
    ("web: a\nweb: b", "defined twice"),
    ("we b: a", "invalid process type"),
])
def test_bad_lines_name_their_line(text, problem):
    with pytest.raises(ProcfileError) as caught:
        parse_procfile(text)
    assert problem in str(caught.value)
    assert str(caught.value).startswith("Procfile line")
