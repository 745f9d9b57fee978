"""The error tree every Berth module raises from.

Each error carries the data that explains it and renders to one line a user can act on
(`str(error)`). Library errors are wrapped with `raise ... from exc` at the adapter that
called the library. Only task boundaries (the deploy worker, the API's error handler, the
CLI's `main`) catch `BerthError` broadly; they log it, record it, or print it.

`status` is the HTTP status the control API answers with when the error reaches it;
`exit_status` the CLI's when it ends a command.
"""

from __future__ import annotations

ECHO_LIMIT = 40  # characters of a user's value an error line repeats


def echo(value: object) -> str:
    """A user's value as an error line shows it: quoted, at most ECHO_LIMIT characters,
    with the full length noted when cut, so a huge value never makes a huge error line."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= ECHO_LIMIT:
        return repr(text)
    return f"{text[:ECHO_LIMIT]!r}... ({len(text)} characters)"


class BerthError(Exception):
    """Base of every error Berth raises on purpose."""

    status: int = 400
    exit_status: int = 1  # the CLI's, when the error ends a command

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BerthError):
    """The configuration file or a configuration value is invalid."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}" if key else f"config: {problem}")
        self.key = key
        self.problem = problem


class InvalidName(BerthError):
    """A name from a user (app, domain, key, config var) does not match its pattern."""

    def __init__(self, kind: str, value: str, rule: str) -> None:
        super().__init__(f"invalid {kind} {echo(value)}: {rule}")
        self.kind = kind
        self.value = value
        self.rule = rule


class NotFound(BerthError):
    """A named thing does not exist."""

    status = 404

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {echo(name)} not found")
        self.kind = kind
        self.name = name


class AppNotFound(NotFound):
    def __init__(self, app: str) -> None:
        super().__init__("app", app)
        self.app = app


class Conflict(BerthError):
    """The request contradicts the current state (a name already taken, say)."""

    status = 409


class AgentUnavailable(BerthError):
    """The CLI cannot reach the agent's control socket."""

    status = 503
