"""The [proxy] table of berth.toml: typed, validated, one clear error per mistake."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.errors import ConfigError


def test_proxy_table_is_read_and_typed() -> None:
    proxy = parse_config(
        '[proxy]\nhttp_port = 8080\nhttps_port = ""\ntrusted_proxies = ["10.0.0.0/8"]\n'
        "request_head_timeout = 5\n"
    ).proxy
    assert proxy.http_port == 8080 and proxy.https_port is None
    assert proxy.trusted_proxies == ("10.0.0.0/8",)
    assert proxy.request_head_timeout == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('trusted_proxies = ["nope"]', "not an address or CIDR"),
        ("keepalive_timeout = 0", "keepalive_timeout must be positive"),
        ("http_port = 70000", "between 0 and 65535"),
        ("max_connections = 0", "max_connections must be positive"),
        ("keepalive = 5", "unknown setting"),
    ],
)
def test_bad_values_are_one_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config("[proxy]\n" + text + "\n")
