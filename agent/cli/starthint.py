"""How to start (or restart) the agent on this system, for the CLI's "the agent is not
running" line and `berth version`: the way install.sh set it up (systemd unit, SysV init script, respawning loop),
else the foreground command. Pure but for the file checks, which are passed in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SYSTEMD_UNIT = Path("/etc/systemd/system/berth.service")
SYSTEMD_RUNNING = Path("/run/systemd/system")
SYSV_SCRIPT = Path("/etc/init.d/berth")
SUPERVISOR = Path("/usr/local/sbin/berth-supervise")
AGENT_PID = Path("/run/berth-agent.pid")  # the agent the respawning loop runs
AGENT_LOG = "/var/log/berth/agent.log"


def start_hint(exists: Callable[[Path], bool] = Path.exists) -> str:
    """The command that starts the agent here, and where to read why it stopped."""
    if exists(SYSTEMD_UNIT) and exists(SYSTEMD_RUNNING):
        return "start it with `systemctl start berth` (why it stopped: `journalctl -u berth`)"
    if exists(SYSV_SCRIPT):
        return f"start it with `{SYSV_SCRIPT} start` (why it stopped: {AGENT_LOG})"
    if exists(SUPERVISOR):
        return f"start it with `setsid {SUPERVISOR} &` (why it stopped: {AGENT_LOG})"
    return "start it with `berth agent` as root"


def restart_hint(exists: Callable[[Path], bool] = Path.exists) -> str:
    """The command that restarts the agent here without refusing a connection (under
    systemd berth.socket holds the ports; elsewhere SIGHUP restarts it in place)."""
    if exists(SYSTEMD_UNIT) and exists(SYSTEMD_RUNNING):
        return "`systemctl restart berth`"
    if exists(SYSV_SCRIPT):
        return f"`{SYSV_SCRIPT} reload`"
    if exists(SUPERVISOR):
        return f"`kill -HUP $(cat {AGENT_PID})`"
    return "send `berth agent` SIGHUP (it restarts in place)"
