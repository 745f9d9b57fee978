"""install.sh run again over an earlier install's berth.toml: --domain and --email given
now change that one key (the rest of the file kept byte for byte), or are refused with
one line before anything changes; without them the configured domain is what the last
lines name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.install.harness import functions, run_shell

WRITE = functions("say", "note", "die", "config_setting", "check_setting", "apply_setting",
                  "write_config") + \
    'CONFIG=$1 DOMAIN=$2 EMAIL=$3; check_setting --domain deploy domain "$DOMAIN"; ' \
    'check_setting --email acme email "$EMAIL"; write_config; echo "domain: $DOMAIN"'

EARLIER = """\
# Berth's configuration; see the README for every setting.
[ssh]
command = "/usr/local/bin/berth"

[deploy]
keep_releases = 3
domain = "old.example.com"   # where apps answer
domain_note = "not the key"

[acme]
email = "old@example.com"

[firewall]
enabled = true"""  # no newline at the end: kept as it is


def rerun(tmp_path: Path, text: str, domain: str = "", email: str = "") -> tuple[str, str]:
    config = tmp_path / "berth.toml"
    config.write_text(text)
    result = run_shell(WRITE, str(config), domain, email, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    tomllib.loads(config.read_text())  # still valid TOML
    return result.stdout, config.read_text()


def test_a_new_domain_and_email_change_only_their_lines(tmp_path: Path):
    out, text = rerun(tmp_path, EARLIER, "new.example.com", "ops@new.example.com")
    assert text == EARLIER.replace('"old.example.com"', '"new.example.com"').replace(
        '"old@example.com"', '"ops@new.example.com"')
    config = tmp_path / "berth.toml"
    assert out.splitlines() == [
        f'-----> Changed [deploy] domain in {config} from "old.example.com" to '
        '"new.example.com" (--domain; the rest of the file is kept)',
        f'-----> Changed [acme] email in {config} from "old@example.com" to '
        '"ops@new.example.com" (--email; the rest of the file is kept)',
        "domain: new.example.com"]


def test_the_same_or_no_flags_change_nothing_and_name_the_configured_domain(tmp_path: Path):
    for domain, email in [("old.example.com", "old@example.com"), ("", "")]:
        out, text = rerun(tmp_path, EARLIER, domain, email)
        assert (out, text) == ("domain: old.example.com\n", EARLIER)


def test_a_missing_key_or_table_is_added(tmp_path: Path):
    earlier = "[deploy]\nkeep_releases = 3\n\n[firewall]\nenabled = true\n"
    _, text = rerun(tmp_path, earlier, "apps.example.com", "ops@example.com")
    assert text == ('[deploy]\ndomain = "apps.example.com"\nkeep_releases = 3\n\n'
                    '[firewall]\nenabled = true\n\n[acme]\nemail = "ops@example.com"\n')
    parsed = tomllib.loads(text)
    assert (parsed["deploy"]["domain"], parsed["acme"]["email"]) == (
        "apps.example.com", "ops@example.com")


def test_a_value_written_otherwise_is_refused_before_anything_changes(tmp_path: Path):
    config = tmp_path / "berth.toml"
    earlier = "[deploy]\ndomain = 'old.example.com'\n"
    config.write_text(earlier)
    result = run_shell(WRITE, str(config), "new.example.com", "", env={"PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f'install.sh: --domain new.example.com: [deploy] domain in {config} is not a '
               'plain "..." string; change it there yourself\n')
    assert config.read_text() == earlier


@pytest.mark.parametrize("email", ['ops"@example.com', "ops@example.com\nx = 1", "ops",
                                   "ops@example", "ops@@example.com", "@example.com",
                                   "ops@example.com."])
def test_a_bad_email_is_refused_on_one_line(email: str):
    script = functions("usage", "die", "printable", "need_value", "read_settings",
                       "parse_args") + 'read_settings; parse_args "$@"; echo parsed'
    result = run_shell(script, "--email", email, env={"PATH": "/usr/bin:/bin"})
    shown = email.replace("\n", "?")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"install.sh: --email {shown}: not an e-mail address\n")
