import pytest

from agent.errors import InvalidName
from agent.names import check_app, check_config_key, check_domain


@pytest.mark.parametrize("name", ["a", "my-app", "a" + "b" * 29, "app2", "a-b", "a--b", "x1"])
def test_valid_app_names(name):
    assert check_app(name) == name


@pytest.mark.parametrize("name", ["", "A", "2app", "-x", "my_app", "a" * 31, "app\n", "../x", "my app",
                                  "c-", "my-app-", "a" * 29 + "-"])
def test_invalid_app_names_are_refused_not_mangled(name):
    with pytest.raises(InvalidName):
        check_app(name)


@pytest.mark.parametrize("name", ["example.com", "www.example.co.uk", "a-b.example.io"])
def test_valid_domains(name):
    assert check_domain(name) == name


@pytest.mark.parametrize("name, why", [
    ("*.example.com", "wildcard"), ("127.0.0.1", "IP address"), ("localhost", "DNS name"),
    ("Example.com", "DNS name"), ("a..b.com", "DNS name"), ("-a.com", "DNS name"),
    ("a.123", "DNS name"), ("::1", "IP address"),
])
def test_invalid_domains(name, why):
    with pytest.raises(InvalidName, match=why):
        check_domain(name)


@pytest.mark.parametrize("key", ["A=B", "a b", "", "1A", "K\nX"])
def test_invalid_config_keys(key):
    with pytest.raises(InvalidName):
        check_config_key(key)


def test_a_huge_rejected_name_gives_a_short_error_line():
    huge = "A" * 1_000_000
    with pytest.raises(InvalidName) as caught:
        check_app(huge)
    line = str(caught.value)
    assert len(line) < 200
    assert "'" + "A" * 40 + "'..." in line and "(1000000 characters)" in line


def test_every_echoed_value_is_bounded():
    from agent.appsettings import AppSettings, apply_setting
    from agent.errors import BerthError, NotFound
    from agent.limits import parse_limits
    huge = "x" * 100_000
    for fail in (lambda: apply_setting(AppSettings(), "restart-policy", huge),
                 lambda: apply_setting(AppSettings(), huge, "on"),
                 lambda: parse_limits([huge])):
        with pytest.raises(BerthError) as caught:
            fail()
        assert len(str(caught.value)) < 300, str(caught.value)[:80]
    assert len(str(NotFound("app", huge))) < 100


def test_a_short_value_is_shown_whole():
    with pytest.raises(InvalidName, match="'My-App'"):
        check_app("My-App")
