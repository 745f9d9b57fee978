"""The adapter to nftables and the other programs the firewall asks (ss, sshd).

Every command is an argv list with a deadline. With a namespace name, the commands that
look at or change the network (nft, ss) run inside it via `ip netns exec NAME ...`; an
empty name means the host's own namespace, used only in production. `sshd -T` reads a
file-system configuration, so it always runs as is.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from dataclasses import dataclass

from agent import processgroup
from agent.firewall.errors import CommandFailed, NetnsMissing, NftMissing, RulesetRejected
from agent.firewall.settings import FirewallSettings
from agent.firewall.sshd import parse_sshd_ports

log = logging.getLogger(__name__)

TABLE_FAMILY, TABLE_NAME = "inet", "berth"


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class NftRunner:
    """Runs nft (and ss) in one network namespace, sshd -T on the host."""

    def __init__(self, *, netns: str = "", nft: str = "nft", timeout: float = 10.0) -> None:
        self.netns = netns
        self.nft_program = nft
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: FirewallSettings) -> NftRunner:
        return cls(netns=settings.netns, nft=settings.nft_command, timeout=settings.command_timeout)

    def in_netns(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    async def load(self, text: str) -> None:
        """Apply `text` with `nft -f` as one transaction; refused text changes nothing."""
        result = await self.nft(["-f", "-"], stdin=text)
        if result.returncode != 0:
            raise RulesetRejected(_first_error(result.stderr), result.stderr)

    async def list_table(self) -> str | None:
        """Berth's table as `nft -s list table` prints it (no counters), or None if absent."""
        result = await self.nft(["-s", "list", "table", TABLE_FAMILY, TABLE_NAME])
        if result.returncode == 0:
            return result.stdout
        if "No such file or directory" in result.stderr:
            return None
        raise CommandFailed(result.argv, _first_error(result.stderr))

    async def list_ruleset(self) -> str:
        result = await self.nft(["-s", "list", "ruleset"])
        if result.returncode != 0:
            raise CommandFailed(result.argv, _first_error(result.stderr))
        return result.stdout

    async def listening_sockets(self) -> str:
        """`ss` lines for every listening TCP socket and bound UDP socket, with owners."""
        self._require("ss", "iproute2")
        argv = self.in_netns(["ss", "-H", "-l", "-n", "-t", "-u", "-p"])
        result = await self.run(argv)
        self._check_netns(result)
        if result.returncode != 0:
            raise CommandFailed(argv, _first_error(result.stderr))
        return result.stdout

    async def nft(self, args: list[str], *, stdin: str | None = None) -> CommandResult:
        self._require(self.nft_program, "nftables")
        result = await self.run(self.in_netns([self.nft_program, *args]), stdin=stdin)
        self._check_netns(result)
        return result

    async def run(self, argv: list[str], *, stdin: str | None = None) -> CommandResult:
        """Run `argv` to completion within the deadline (killing it past the deadline).

        The command runs in a thread, not as an asyncio subprocess: on Python 3.11.2 an
        asyncio subprocess whose start is cancelled (the agent stopping) hangs the loop's
        shutdown for ever. A cancelled caller leaves the thread to end by the deadline.
        """
        log.debug("firewall command argv=%s", argv)
        return await asyncio.to_thread(_run_blocking, argv, stdin, self.timeout)

    def _require(self, program: str, package: str) -> None:
        if self.netns:
            self._require_ip()
        if shutil.which(program) is None:
            raise NftMissing(program, package)

    @staticmethod
    def _require_ip() -> None:
        if shutil.which("ip") is None:
            raise NftMissing("ip", "iproute2")

    def _check_netns(self, result: CommandResult) -> None:
        if self.netns and "Cannot open network namespace" in result.stderr:
            raise NetnsMissing(self.netns)


def _run_blocking(argv: list[str], stdin: str | None, timeout: float) -> CommandResult:
    """Run `argv`; past the deadline it is killed and reaped within a bound
    (agent.processgroup): a process stuck in the kernel does not hold the caller."""
    given = {"input": stdin.encode()} if stdin is not None else {"stdin": subprocess.DEVNULL}
    try:
        result = processgroup.run(argv, timeout=timeout, capture_output=True, **given)
    except FileNotFoundError as exc:
        raise CommandFailed(argv, "program not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, f"no answer within {timeout:g}s") from exc
    return CommandResult(argv, result.returncode, result.stdout.decode(),
                         result.stderr.decode())


def _first_error(stderr: str) -> str:
    """The line of nft's (multi-line, caret-marked) error output that says what is wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "Error:" in line:
            return line
    return lines[0] if lines else "failed without a message"


async def read_sshd_ports(
    argv: tuple[str, ...], runner: NftRunner
) -> tuple[tuple[int, ...] | None, str]:
    """Ports of the running sshd's configuration (on the host), or (None, why not)."""
    if shutil.which(argv[0]) is None:
        return None, f"{argv[0]} not found"
    try:
        result = await runner.run(list(argv))
    except CommandFailed as exc:
        return None, exc.problem
    if result.returncode != 0:
        return None, _first_error(result.stderr)
    ports = parse_sshd_ports(result.stdout)
    return (ports, "") if ports else (None, "no port lines in its output")
