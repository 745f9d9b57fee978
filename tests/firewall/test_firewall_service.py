"""The firewall service against a real namespace: no-op re-apply, confirm/revert, disable,
status, neighbours and the errors a user can meet."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest

from agent.firewall import FirewallService, FirewallSettings
from agent.firewall.errors import (
    FirewallConflict,
    FirewallError,
    NetnsMissing,
    NftMissing,
    NothingToConfirm,
    RulesetRejected,
)
from agent.firewall.nft import NftRunner
from tests.firewall.lab import Lab

pytestmark = pytest.mark.netns

SSH_CONNECTION = "10.77.0.2 50022 10.77.0.1 22"


def service(lab: Lab, **settings: object) -> FirewallService:
    return FirewallService(
        FirewallSettings(netns=lab.server, sshd_command=lab.sshd_command(), **settings)  # type: ignore[arg-type]
    )


def listing(lab: Lab) -> str | None:
    text = lab.nft("-s", "list", "ruleset")
    match = re.search(r"^table inet berth \{\n.*?^\}\n", text, re.MULTILINE | re.DOTALL)
    return match.group(0) if match else None


def others(lab: Lab) -> str:
    """Every table but Berth's, as the kernel lists them."""
    text = lab.nft("-s", "list", "ruleset")
    return re.sub(r"^table inet berth \{\n.*?^\}\n", "", text, flags=re.MULTILINE | re.DOTALL)


async def wait_for(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def test_plan_is_the_golden_shape_and_changes_nothing(clean_lab: Lab) -> None:
    before = clean_lab.nft("-s", "list", "ruleset")
    plan = asyncio.run(service(clean_lab).plan(SSH_CONNECTION))
    assert clean_lab.nft("-s", "list", "ruleset") == before
    assert "# SSH ports kept open: 22 (sshd -T), 22 (current SSH connection)" in plan.text
    assert "Docker's iptables chains are present" in plan.text
    assert plan.ssh.ports == (22,)
    # The dry-run text is exactly what nft accepts.
    clean_lab.nft("-c", "-f", "-", stdin=plan.text)


def test_second_apply_changes_nothing_and_says_so(clean_lab: Lab) -> None:
    lab = clean_lab
    svc = service(lab, allow=("8443/tcp",))

    async def scenario() -> None:
        first = await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=None)
        assert first.changed and "Firewall applied" in first.message
        handles = lab.nft("-a", "list", "table", "inet", "berth")
        second = await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=None)
        assert not second.changed
        assert second.message.startswith("Firewall unchanged")
        assert second.digest == first.digest
        # Not reloaded: the kernel's rule handles are the same.
        assert lab.nft("-a", "list", "table", "inet", "berth") == handles
        # A fresh service (an agent restart) also recognises the loaded table.
        again = await service(lab, allow=("8443/tcp",)).apply(
            ssh_connection=SSH_CONNECTION, confirm_within=None
        )
        assert not again.changed
        # A different configuration does change it.
        other = await service(lab, allow=("8444/tcp",)).apply(
            ssh_connection=SSH_CONNECTION, confirm_within=None
        )
        assert other.changed

    asyncio.run(scenario())


def test_a_table_edited_behind_berths_back_is_replaced(clean_lab: Lab) -> None:
    lab = clean_lab
    svc = service(lab)

    async def scenario() -> None:
        await svc.apply(ssh_connection=None, confirm_within=None)
        lab.nft("insert", "rule", "inet", "berth", "input", "tcp", "dport", "5432", "accept")
        result = await svc.apply(ssh_connection=None, confirm_within=None)
        assert result.changed
        assert "edited outside Berth" in result.render()
        assert "5432" not in (listing(lab) or "")

    asyncio.run(scenario())


def test_an_unconfirmed_change_reverts_to_the_previous_table(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        confirmed = service(lab, allow=("8443/tcp",))
        await confirmed.apply(ssh_connection=SSH_CONNECTION, confirm_within=None)
        before = listing(lab)
        svc = service(lab, allow=("9443/tcp",))
        result = await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=1.0)
        assert result.changed and result.pending_confirm_until is not None
        assert "berth firewall:confirm" in result.message
        assert "9443" in (listing(lab) or "")
        status = await svc.status()
        assert status.pending_confirm_until == result.pending_confirm_until
        await wait_for(lambda: listing(lab) == before, 10.0)
        with pytest.raises(NothingToConfirm, match="was reverted at .*not confirmed in time"):
            await svc.confirm()
        assert "reverted" in (await svc.status()).render()

    asyncio.run(scenario())


def test_an_unconfirmed_first_apply_reverts_to_no_table(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        svc = service(lab)
        await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=0.5)
        assert listing(lab) is not None
        await wait_for(lambda: listing(lab) is None, 10.0)

    asyncio.run(scenario())


def test_successive_unconfirmed_applies_revert_to_the_last_confirmed_state(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        await service(lab).apply(ssh_connection=None, confirm_within=None)
        confirmed = listing(lab)
        svc = service(lab, allow=("1111/tcp",))
        await svc.apply(ssh_connection=None, confirm_within=30.0)
        svc.settings = FirewallSettings(
            netns=lab.server, sshd_command=lab.sshd_command(), allow=("2222/udp",)
        )
        result = await svc.apply(ssh_connection=None, confirm_within=0.5)
        assert "2222" in (listing(lab) or "")
        assert result.pending_confirm_until is not None
        await wait_for(lambda: listing(lab) == confirmed, 10.0)

    asyncio.run(scenario())


def test_confirm_keeps_the_change(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        svc = service(lab, allow=("8443/tcp",))
        await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=1.0)
        applied = listing(lab)
        assert "confirmed" in await svc.confirm()
        await asyncio.sleep(2.0)  # well past the deadline
        assert listing(lab) == applied
        assert (await svc.status()).pending_confirm_until is None
        with pytest.raises(NothingToConfirm, match="no firewall change is waiting"):
            await svc.confirm()

    asyncio.run(scenario())


def test_agent_shutdown_reverts_an_unconfirmed_change(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        svc = service(lab)
        await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=60.0)
        assert listing(lab) is not None
        await svc.aclose()
        assert listing(lab) is None

    asyncio.run(scenario())


def test_disable_removes_only_berths_table(clean_lab: Lab) -> None:
    lab = clean_lab
    before = lab.nft("-s", "list", "ruleset")
    assert "table inet decoy" in before and "table ip nat" in before

    async def scenario() -> None:
        svc = service(lab)
        await svc.apply(ssh_connection=SSH_CONNECTION, confirm_within=None)
        assert listing(lab) is not None
        assert others(lab) == before  # applying touched nobody else either
        assert "removed" in await svc.disable()
        assert lab.nft("-s", "list", "ruleset") == before
        assert "not active" in await svc.disable()

    asyncio.run(scenario())


def test_status_tells_what_is_reachable(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        svc = service(lab, allow=("5432/tcp from 10.0.0.0/8",))
        before = await svc.status()
        assert not before.active
        assert {r.socket.port: r.verdict.state for r in before.sockets}[5432] == "open"
        await svc.apply(ssh_connection=None, confirm_within=None)
        status = await svc.status()
        assert status.active and status.current
        states = {r.socket.port: r.verdict.state for r in status.sockets}
        assert states[22] == "open" and states[80] == "open" and states[443] == "open"
        assert states[8080] == "closed" and states[2222] == "closed"
        assert states[5432] == "restricted"
        assert states[8000] == "closed"  # the Docker-published port, found in the nat table
        text = status.render()
        assert "active, matches the configuration" in text
        assert re.search(r"tcp\s+8080\s+\S+\s+python\S*\s+closed \(not allowed\)", text), text
        as_dict = status.to_dict()
        assert as_dict["active"] is True and as_dict["current"] is True
        assert {"kind": "ssh", "what": "22/tcp"} in as_dict["allowed"]
        # A changed configuration shows as "differs".
        other = await service(lab).status()
        assert not other.current and "differs from the configuration" in other.render()
        published = await service(lab, publish=("8000/tcp",)).status()
        assert {r.socket.port: r.verdict.state for r in published.sockets}[8000] == "open"

    asyncio.run(scenario())


def test_beside_ufw_and_never_beside_firewalld(clean_lab: Lab) -> None:
    lab = clean_lab
    lab.run(lab.server, "iptables", "-N", "ufw-before-input")
    try:
        result = asyncio.run(service(lab).apply(ssh_connection=None, confirm_within=None))
        assert result.changed and "ufw is active: Berth works beside it" in result.render()
    finally:
        lab.run(lab.server, "iptables", "-X", "ufw-before-input")
    lab.nft("-f", "-", stdin="table inet berth\ndelete table inet berth\n")
    lab.nft("add", "table", "inet", "firewalld")
    try:
        with pytest.raises(FirewallConflict, match="^firewalld is active: "):
            asyncio.run(service(lab).apply(ssh_connection=None, confirm_within=None))
        assert listing(lab) is None
    finally:
        lab.nft("delete", "table", "inet", "firewalld")


def test_a_rejected_ruleset_leaves_the_previous_one(clean_lab: Lab) -> None:
    lab = clean_lab
    asyncio.run(service(lab).apply(ssh_connection=None, confirm_within=None))
    before = listing(lab)
    runner = NftRunner(netns=lab.server)
    broken = (
        "table inet berth\ndelete table inet berth\n"
        "table inet berth {\n\tchain input {\n\t\ttcp dport 22 jump nowhere\n\t}\n}\n"
    )
    with pytest.raises(RulesetRejected) as caught:
        asyncio.run(runner.load(broken))
    assert str(caught.value).startswith(
        "nft rejected the ruleset, the previous rules stay in place"
    )
    assert "\n" not in str(caught.value) and "Error:" in caught.value.detail
    assert listing(lab) == before


def test_missing_nft_names_the_package(clean_lab: Lab) -> None:
    svc = service(clean_lab, nft_command="/nonexistent/nft")
    with pytest.raises(NftMissing, match=r"install the Debian package nftables"):
        asyncio.run(svc.apply(ssh_connection=None, confirm_within=None))
    assert listing(clean_lab) is None


def test_a_missing_namespace_is_named() -> None:
    svc = FirewallService(FirewallSettings(netns="berth-no-such-ns"))
    with pytest.raises(NetnsMissing, match="'berth-no-such-ns' does not exist"):
        asyncio.run(svc.status())


def test_bad_confirm_within_is_refused_before_anything(clean_lab: Lab) -> None:
    with pytest.raises(FirewallError, match="must be above 0 seconds"):
        asyncio.run(service(clean_lab).apply(ssh_connection=None, confirm_within=0))
    assert listing(clean_lab) is None


def test_status_counts_the_ssh_port_the_table_was_applied_over(clean_lab: Lab) -> None:
    lab = clean_lab

    async def scenario() -> None:
        svc = service(lab)
        await svc.apply(ssh_connection="10.77.0.2 50022 10.77.0.1 2222", confirm_within=None)
        status = await svc.status()  # asked without the connection, as the agent would
        assert status.current
        assert {r.socket.port: r.verdict.state for r in status.sockets}[2222] == "open"

    asyncio.run(scenario())
