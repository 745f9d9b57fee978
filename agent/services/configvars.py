"""A change of an app's config vars, as the user asked for it (pure: no I/O).

A change is applied to the config as it is when the change runs, never to a copy read
earlier, so two changes made at the same time both stay (the store applies it inside one
transaction; a release applies it under the app's lock). The limits keep every var
something the container engine can start: Linux refuses an environment string over
128 KiB ("argument list too long"), and the whole environment shares the exec limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.errors import BerthError, echo
from agent.names import check_config_key

MAX_VAR_BYTES = 64 * 1024  # one KEY=VALUE, UTF-8
MAX_CONFIG_BYTES = 512 * 1024  # all of an app's vars together
# Set by Berth for every process: a config var of this name would be overridden.
PORT_REFUSED = ("PORT cannot be set: Berth gives every process PORT (5000, or deploy."
                "container_port in berth.toml) and the proxy reaches it there; listen on $PORT")


class ConfigTooLarge(BerthError):
    """A var, or the app's vars together, would be over what an instance can start with."""

    status = 413

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} would be {size} bytes: the limit is {limit} bytes "
                         f"({limit // 1024} KiB)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class ConfigChange:
    """Vars to set (KEY -> VALUE) and keys to unset."""

    set: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()

    @classmethod
    def parse(cls, to_set: object, to_unset: object) -> ConfigChange:
        """From a request's JSON; a bad key, value or size is refused with one line."""
        if not isinstance(to_set, dict) or not isinstance(to_unset, list):
            raise BerthError("expected {'set': {KEY: VALUE}, 'unset': [KEY]}")
        for key, value in to_set.items():
            check_config_key(str(key))
            if key == "PORT":
                raise BerthError(PORT_REFUSED)
            if not isinstance(value, str):
                raise BerthError(f"the value of {key} must be a string")
            if "\x00" in value or not _is_utf8(value):
                raise BerthError(f"the value of {key} is not text an environment can hold "
                                 "(a NUL character or a lone surrogate)")
            size = _var_bytes(key, value)
            if size > MAX_VAR_BYTES:
                raise ConfigTooLarge(f"{key}=VALUE", size, MAX_VAR_BYTES)
        unset = tuple(check_config_key(str(key)) for key in to_unset)
        if not to_set and not unset:
            raise BerthError("nothing to change: give KEY=VALUE pairs to set or KEYs to unset")
        both = sorted(set(to_set) & set(unset))
        if both:
            raise BerthError(f"{both[0]} is both set and unset")
        return cls(dict(to_set), unset)

    def applied_to(self, config: Mapping[str, str], app: str, *, strict: bool = True
                   ) -> dict[str, str]:
        """The config after this change. Strict (before the change is accepted): an unset
        of a var the app does not have, or a total growing over the limit, is refused;
        not strict (storing a change already released): applied as far as it goes."""
        missing = [key for key in self.unset if key not in config]
        if missing and strict:
            raise BerthError(f"{app} has no config var {echo(missing[0])}")
        result = {k: v for k, v in config.items() if k not in self.unset}
        result.update(self.set)
        total = _config_bytes(result)
        if strict and total > MAX_CONFIG_BYTES and total > _config_bytes(config):
            raise ConfigTooLarge(f"the config of {app}", total, MAX_CONFIG_BYTES)
        return dict(sorted(result.items()))

    def describe(self) -> str:
        changes = []
        if self.set:
            changes.append("Set " + ", ".join(sorted(self.set)))
        if self.unset:
            changes.append("Unset " + ", ".join(sorted(self.unset)))
        return "; ".join(changes)


def _var_bytes(key: str, value: str) -> int:
    return len(key.encode()) + 1 + len(value.encode("utf-8", "surrogatepass"))


def _config_bytes(config: Mapping[str, str]) -> int:
    return sum(_var_bytes(k, v) for k, v in config.items())


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
