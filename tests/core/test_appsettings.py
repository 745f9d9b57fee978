import pytest

from agent.appsettings import AppSettings, InvalidSetting, apply_setting
from agent.errors import BerthError


def test_default_deploy_branches_are_main_and_master():
    settings = AppSettings()
    assert settings.deploys("main") and settings.deploys("master")
    assert not settings.deploys("feature")


def test_a_configured_branch_replaces_the_defaults():
    settings = apply_setting(AppSettings(), "deploy-branch", "trunk")
    assert settings.deploys("trunk") and not settings.deploys("main")


def test_values_are_parsed_and_reset_by_an_empty_value():
    settings = apply_setting(AppSettings(), "max-body", "200m")
    assert settings.max_body == 200 * 1024 * 1024
    settings = apply_setting(settings, "hsts", "on")
    assert settings.hsts is True
    settings = apply_setting(settings, "restart-policy", "on-failure:5")
    assert settings.restart_policy == "on-failure:5"
    assert apply_setting(settings, "max-body", "").max_body is None
    assert AppSettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize("key, value", [
    ("restart-policy", "sometimes"), ("max-body", "lots"), ("hsts", "maybe"),
    ("deploy-branch", "../x"), ("health-timeout", "0"),
])
def test_bad_values_are_refused(key, value):
    with pytest.raises(InvalidSetting):
        apply_setting(AppSettings(), key, value)


def test_unknown_keys_list_the_known_ones():
    with pytest.raises(BerthError, match="known: deploy-branch"):
        apply_setting(AppSettings(), "colour", "blue")


def test_stored_values_of_the_wrong_type_are_refused_by_key():
    with pytest.raises(TypeError, match="acme is str 'off', expected true or false"):
        AppSettings.from_json({"acme": "off"})
    assert AppSettings.from_json({"max_body": 10, "health_timeout": 5}).health_timeout == 5
