import base64

import pytest

from agent.cli.main import main
from agent.cli.sshcommand import parse_git_target
from agent.cli.verbs.config import parse_pairs
from agent.errors import BerthError


def test_values_survive_exactly():
    value = "a b 'q' \"dq\" = x\nline2 ünï €"
    assert parse_pairs([f"KEY={value}", "EMPTY="], encoded=False) == {"KEY": value, "EMPTY": ""}


def test_encoded_values():
    value = "multi\nline"
    encoded = base64.b64encode(value.encode()).decode()
    assert parse_pairs([f"K={encoded}"], encoded=True) == {"K": value}


@pytest.mark.parametrize("value", ["\x80", "not base64!", "//8="])
def test_bad_encoded_values_are_one_clear_error(value):
    """Non-ASCII text, bad base64 and bytes that are not UTF-8 are the user's error."""
    with pytest.raises(BerthError, match="not base64 of UTF-8"):
        parse_pairs([f"K={value}"], encoded=True)


@pytest.mark.parametrize("pair", ["NOEQUALS", "=value", "BAD KEY=1", "K\nX=1"])
def test_bad_pairs_are_refused(pair):
    with pytest.raises(BerthError):
        parse_pairs([pair], encoded=False)


@pytest.mark.parametrize("argument, app", [
    ("myapp", "myapp"), ("/myapp", "myapp"), ("~/myapp", "myapp"), ("myapp.git", "myapp"),
])
def test_git_targets(argument, app):
    assert parse_git_target(argument) == app


@pytest.mark.parametrize("argument", ["../etc", "My_App", "a/b", "", "x" * 40])
def test_bad_git_targets(argument):
    with pytest.raises(BerthError):
        parse_git_target(argument)


def test_unreachable_agent_is_one_line_and_exit_1(tmp_path, capsys):
    config = tmp_path / "berth.toml"
    config.write_text(f"[paths]\nrun_dir = '{tmp_path}'\ndata_dir = '{tmp_path}'\n")
    status = main(["apps"], environ={"BERTH_CONFIG": str(config)})
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("error: the agent is not running")


def test_usage_errors_are_one_line(tmp_path, capsys):
    config = tmp_path / "berth.toml"
    config.write_text("")
    status = main(["config:set"], environ={"BERTH_CONFIG": str(config)})
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "required" in err


@pytest.mark.parametrize("command", [["apps"], ["agent"]])
def test_bad_config_file_is_one_line(tmp_path, capsys, command):
    config = tmp_path / "berth.toml"
    config.write_text("[paths]\nbogus = 1\n")
    assert main(command, environ={"BERTH_CONFIG": str(config)}) == 1
    assert capsys.readouterr().err == "error: config: paths.bogus: unknown setting\n"


def test_the_agent_validates_every_section(tmp_path, capsys):
    config = tmp_path / "berth.toml"
    config.write_text("[deploy]\nbogus = 1\n")
    assert main(["agent"], environ={"BERTH_CONFIG": str(config)}) == 1
    assert capsys.readouterr().err == "error: config: deploy.bogus: unknown setting\n"


@pytest.mark.parametrize(("words", "line"), [
    (["echo $HOME && ls"], "echo $HOME && ls"),
    (["python3", "-c", "import sys; sys.exit(4)"], "python3 -c 'import sys; sys.exit(4)'"),
    (["echo", "$SPACED", "from", "$DYNO;", "ls"], "echo $SPACED from $DYNO; ls"),
    (["printf", "%s\n", "it's", ""], "printf '%s\n' 'it'\"'\"'s' ''"),
])
def test_run_builds_the_command_line_like_heroku_run(words, line):
    from agent.cli.verbs.processes import command_line

    assert command_line(words) == line


HANGUP_CHILD = """
import sys, time
from agent.cli.verbs.processes import exit_on_hangup
exit_on_hangup(sys.stdout)
print("watching", flush=True)
time.sleep(float(sys.argv[1]))
"""


def test_run_leaves_when_its_reader_hangs_up(tmp_path):
    """Over SSH a gone client shows only as the far end of stdout closing: `run` must
    leave then (the agent stops the container), and not when writing to a file."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", HANGUP_CHILD, "30"],
                             stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"watching\n"
    child.stdout.close()  # the reader goes away
    assert child.wait(timeout=10) == 129
    with (tmp_path / "out").open("w") as out:
        quiet = subprocess.run([sys.executable, "-c", HANGUP_CHILD, "0.5"], stdout=out,
                               timeout=30, check=False)
    assert quiet.returncode == 0


def test_a_bug_is_still_one_line_never_a_traceback(monkeypatch, capsys):
    import agent.cli.hook

    def broken(argv, environ):
        raise PermissionError(13, "Permission denied", "/tmp/x")

    monkeypatch.setattr(agent.cli.hook, "run_hook", broken)
    assert main(["hook", "pre-receive"], environ={}) == 1
    err = capsys.readouterr().err
    assert err == "error: internal error: PermissionError: [Errno 13] Permission denied: " \
                  "'/tmp/x' (please report it)\n"
