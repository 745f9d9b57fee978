"""The host firewall: one nftables table of Berth's own, covering Docker's forward path.

Modules, from the pure core out:
- `rules`, `settings`: user-written values and their validation.
- `policy`: what is let in; `render`: the nft transaction installing it.
- `sshd`, `coexist`, `sockets`: SSH ports, other firewall managers, listening sockets.
- `nft`: the adapter running nft/ss (optionally in a network namespace).
- `service`: `FirewallService`, what the agent and the CLI call; `results`: its answers.
- `bootfile`: the ruleset saved for boot, which the service writes and removes.
"""

from agent.firewall.results import ApplyResult, FirewallPlan, FirewallStatus
from agent.firewall.service import FirewallService
from agent.firewall.settings import FirewallSettings

__all__ = ["ApplyResult", "FirewallPlan", "FirewallService", "FirewallSettings", "FirewallStatus"]
