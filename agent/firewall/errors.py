"""Errors of the host firewall, each one line a user can act on."""

from __future__ import annotations

from agent.errors import BerthError, ConfigError


class FirewallError(BerthError):
    """Base of the firewall's errors."""


class InvalidFirewallSetting(ConfigError):
    """A `[firewall]` value is malformed: refused before anything is applied."""

    def __init__(self, key: str, value: object, problem: str) -> None:
        super().__init__(key, f"{value!r}: {problem}")
        self.value = value


class NftMissing(FirewallError):
    """A program the firewall needs is not installed."""

    status = 503

    def __init__(self, program: str, package: str) -> None:
        super().__init__(
            f"{program!r} not found: install the Debian package {package} "
            f"(apt-get install {package})"
        )
        self.program = program
        self.package = package


class NetnsMissing(FirewallError):
    """`firewall.netns` names a network namespace that does not exist."""

    status = 503

    def __init__(self, netns: str) -> None:
        super().__init__(f"network namespace {netns!r} does not exist (ip netns list)")
        self.netns = netns


class CommandFailed(FirewallError):
    """A command the firewall ran (nft, ss, sshd) failed or timed out."""

    status = 500

    def __init__(self, argv: list[str], problem: str) -> None:
        super().__init__(f"{' '.join(argv)}: {problem}")
        self.argv = argv
        self.problem = problem


class RulesetRejected(FirewallError):
    """The kernel (or nft) refused the new ruleset; the previous one is still in place."""

    status = 500

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(f"nft rejected the ruleset, the previous rules stay in place: {summary}")
        self.summary = summary
        self.detail = detail


class FirewallConflict(FirewallError):
    """Another firewall manager is active and Berth will not run beside it."""

    status = 409

    def __init__(self, manager: str, reason: str) -> None:
        super().__init__(f"{manager} is active: {reason}")
        self.manager = manager
        self.reason = reason


class InvalidSshConnection(FirewallError):
    """The SSH_CONNECTION value handed in cannot be read, so the SSH port is unknown."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"SSH_CONNECTION {value!r} is not 'client_ip client_port server_ip server_port'; "
            "refusing to apply without knowing the SSH port in use"
        )
        self.value = value


class NothingToConfirm(FirewallError):
    """`confirm()` was called with no change waiting for confirmation."""

    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(f"nothing to confirm: {detail}")
        self.detail = detail
