"""Validation of names that come from users: apps, add-ons, domains, SSH key names, config
keys, process types.

Each check returns the value unchanged or raises `InvalidName`; nothing is lowercased,
trimmed or otherwise mangled into something the user did not type.
"""

from __future__ import annotations

import ipaddress
import re

from agent.errors import InvalidName

APP_NAME_MAX = 30
APP_RULE = (f"must match ^[a-z][a-z0-9-]{{0,{APP_NAME_MAX - 1}}}$ and not end in '-' "
            f"(lowercase letters, digits and dashes, {APP_NAME_MAX} at most)")
# An app's name is a DNS label of its default domain: no dash at its end.
_APP = re.compile(rf"[a-z]([a-z0-9-]{{0,{APP_NAME_MAX - 2}}}[a-z0-9])?")

KEY_NAME_RULE = "must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

CONFIG_KEY_RULE = "must match ^[A-Za-z_][A-Za-z0-9_]*$ (letters, digits and underscores)"
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")

PROCESS_TYPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,29}"  # also read from Procfile lines
PROCESS_TYPE_RULE = f"must match ^{PROCESS_TYPE_PATTERN}$"
_PROCESS_TYPE = re.compile(PROCESS_TYPE_PATTERN)

DOMAIN_RULE = "must be a DNS name such as www.example.com (lowercase, no wildcard, not an IP address)"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def app_shaped(name: str) -> bool:
    """Whether `name` follows the app name's rule. An add-on's name does too: it ends
    its container's host name on the app's network."""
    return _APP.fullmatch(name) is not None


def check_app(name: str) -> str:
    if not app_shaped(name):
        raise InvalidName("app name", name, APP_RULE)
    return name


def check_key_name(name: str) -> str:
    if not _KEY_NAME.fullmatch(name):
        raise InvalidName("key name", name, KEY_NAME_RULE)
    return name


def check_config_key(name: str) -> str:
    if not _CONFIG_KEY.fullmatch(name):
        raise InvalidName("config key", name, CONFIG_KEY_RULE)
    return name


def check_process_type(name: str) -> str:
    if not _PROCESS_TYPE.fullmatch(name):
        raise InvalidName("process type", name, PROCESS_TYPE_RULE)
    return name


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def check_domain(name: str) -> str:
    """A fully qualified DNS name an app can be served on (and get an HTTP-01 cert for)."""
    if name.startswith("*."):
        raise InvalidName("domain", name, "wildcards cannot be proven with HTTP-01; add each name")
    if is_ip_address(name):
        raise InvalidName("domain", name, "an IP address cannot have a domain certificate")
    labels = name.split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidName("domain", name, DOMAIN_RULE)
    return name
