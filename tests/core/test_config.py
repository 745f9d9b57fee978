from pathlib import Path

import pytest

from agent.config import Config, load_config, parse_config
from agent.errors import ConfigError


def test_missing_default_file_means_defaults(tmp_path, monkeypatch):
    absent = tmp_path / "absent.toml"
    monkeypatch.setattr("agent.paths.DEFAULT_CONFIG_PATH", absent)
    monkeypatch.setattr("agent.config.DEFAULT_CONFIG_PATH", absent)
    assert load_config(environ={}) == Config()


def test_values_are_typed_and_grouped():
    config = parse_config('[deploy]\ndomain = "apps.example.com"\nhealth_timeout = 5\n'
                          '[paths]\ndata_dir = "/srv/berth"\n')
    assert config.deploy.domain == "apps.example.com"
    assert config.deploy.health_timeout == 5.0
    assert config.paths.database == Path("/srv/berth/berth.db")


@pytest.mark.parametrize("text, message", [
    ("[deploy]\nnope = 1", "deploy.nope: unknown setting"),
    ("[deploy]\nkeep_releases = 'five'", "deploy.keep_releases: expected an integer"),
    ("[deploy]\nport_range_start = 10", "port_range"),
    ("[deploy", "not valid TOML"),
    ("source = 'x'", "source: unknown setting"),
    ("[addons]\ncapture_timeout = 0", "addons: capture_timeout must be positive"),
])
def test_bad_config_is_one_clear_error(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"BERTH_CONFIG": str(tmp_path / "missing.toml")})


def test_file_is_read_from_the_environment(tmp_path):
    path = tmp_path / "berth.toml"
    path.write_text("[deploy]\ndomain = 'x.example'\n")
    config = load_config(environ={"BERTH_CONFIG": str(path)})
    assert config.deploy.domain == "x.example"
    assert config.source == path
