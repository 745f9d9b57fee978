"""Settings of the host firewall (the `[firewall]` table of berth.toml).

Every value is checked when the settings are built (so at config load), before anything
is applied: a bad port, protocol, CIDR or interface name is one `InvalidFirewallSetting`
line naming the key. Example:

    [firewall]
    enabled = true
    allow = ["8443/tcp", "51820/udp", "5432/tcp from 10.0.0.0/8"]
    publish = ["25565/tcp"]          # a container port the world may reach
    trusted_interfaces = ["wg0"]     # everything from here is let in
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.firewall.errors import InvalidFirewallSetting
from agent.firewall.rules import (
    PortRule,
    check_interface,
    check_netns,
    check_port,
    parse_port_rules,
)

# Where install.sh's boot loader (berth-firewall.service, /etc/init.d/berth-firewall)
# looks unless `boot_ruleset` says otherwise.
DEFAULT_BOOT_RULESET = Path("/etc/berth/firewall.nft")


@dataclass(frozen=True)
class FirewallSettings:
    # Apply the firewall when the agent starts.
    enabled: bool = False
    # Network namespace the rules go into; "" is the host's own (production only: tests
    # always name a namespace they made).
    netns: str = ""
    # SSH ports always let in, besides those read from `sshd -T` and the port of the SSH
    # connection the change is made over.
    ssh_ports: tuple[int, ...] = ()
    # The proxy's ports, open to everyone.
    web_ports: tuple[int, ...] = (80, 443)
    # Further host ports to let in: "PORT[-PORT]/tcp|udp [from CIDR[,CIDR]]".
    allow: tuple[str, ...] = ()
    # Container ports published on the host that the outside may reach (same syntax, the
    # host-side port). Every other published port is closed to the outside.
    publish: tuple[str, ...] = ()
    # Interfaces whose traffic is trusted entirely (a VPN, a private LAN; "docker0" lets
    # containers reach services on the host). A trailing * matches a prefix.
    trusted_interfaces: tuple[str, ...] = ()
    # Interfaces containers sit behind (Docker's default bridge and user networks).
    container_interfaces: tuple[str, ...] = ("docker0", "br-*")
    # Ping replies per second (ICMP and ICMPv6 echo), beyond which requests are dropped.
    icmp_echo_rate: int = 10
    # Deadline of each nft / ss / sshd run, in seconds.
    command_timeout: float = 10.0
    # How the running sshd's effective configuration is read (its `port` lines).
    sshd_command: tuple[str, ...] = ("sshd", "-T")
    # How often the agent reads sshd's ports and lets in new ones (sshd moved port).
    sshd_check_interval: float = 60.0
    nft_command: str = "nft"
    # Where the ruleset loaded at boot (before the network) is saved; unset: the
    # installer's path for the host's own namespace, and none for a named namespace (the
    # boot loader loads into the host's namespace, never into one a test made).
    boot_ruleset: Path | None = None

    def __post_init__(self) -> None:
        check_netns(self.netns, "firewall.netns")
        for name in ("ssh_ports", "web_ports"):
            for i, port in enumerate(getattr(self, name)):
                check_port(port, f"firewall.{name}[{i}]")
        self.allow_rules()
        self.publish_rules()
        for name in ("trusted_interfaces", "container_interfaces"):
            for i, interface in enumerate(getattr(self, name)):
                check_interface(interface, f"firewall.{name}[{i}]")
        if not 1 <= self.icmp_echo_rate <= 10000:
            raise InvalidFirewallSetting(
                "firewall.icmp_echo_rate", self.icmp_echo_rate, "must be 1-10000 per second"
            )
        if not self.sshd_check_interval >= 1:
            raise InvalidFirewallSetting(
                "firewall.sshd_check_interval", self.sshd_check_interval, "must be 1 s or more"
            )
        if not self.command_timeout > 0:
            raise InvalidFirewallSetting(
                "firewall.command_timeout", self.command_timeout, "must be above 0"
            )
        if not self.sshd_command or not all(self.sshd_command):
            raise InvalidFirewallSetting(
                "firewall.sshd_command", self.sshd_command, "must name a program"
            )
        if not self.nft_command:
            raise InvalidFirewallSetting("firewall.nft_command", self.nft_command, "empty")
        if self.boot_ruleset is not None and not self.boot_ruleset.is_absolute():
            raise InvalidFirewallSetting(
                "firewall.boot_ruleset", str(self.boot_ruleset), "must be an absolute path"
            )

    def boot_file(self) -> Path | None:
        """The file the boot loader gives to `nft -f`, or None when nothing is saved."""
        if self.boot_ruleset is not None:
            return self.boot_ruleset
        return None if self.netns else DEFAULT_BOOT_RULESET

    def allow_rules(self) -> tuple[PortRule, ...]:
        return parse_port_rules(self.allow, "firewall.allow")

    def publish_rules(self) -> tuple[PortRule, ...]:
        return parse_port_rules(self.publish, "firewall.publish")
