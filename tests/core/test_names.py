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
