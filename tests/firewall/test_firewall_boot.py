"""The ruleset saved for boot: written by every apply that stands, exactly as applied;
removed when the firewall goes off; always letting in the SSH ports of the last apply;
and install.sh's boot loader, run inside the lab's namespace as it runs at boot."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest

from agent.firewall import FirewallService, FirewallSettings
from agent.firewall.render import table_ssh_ports
from tests.firewall.lab import Lab

pytestmark = pytest.mark.netns

INSTALL_SH = Path(__file__).resolve().parents[2] / "install.sh"


def service(lab: Lab, boot: Path, *, sshd: tuple[str, ...] | None = None,
            **settings: object) -> FirewallService:
    return FirewallService(FirewallSettings(  # type: ignore[arg-type]
        netns=lab.server, sshd_command=sshd or lab.sshd_command(), boot_ruleset=boot,
        **settings))


def sshd_on(lab: Lab, port: int, where: Path) -> tuple[str, ...]:
    """A real `sshd -T` whose configuration says `Port port` (sshd moved to another port)."""
    sshd, flag, _, _ = lab.sshd_command()
    config = where / f"sshd_config_{port}"
    config.write_text(f"Port {port}\nHostKey {lab.workdir / 'hostkey'}\n")
    return (sshd, flag, "-f", str(config))


def boot_loader(ruleset: Path, where: Path) -> Path:
    """The script install.sh's boot unit runs, made by install.sh's own function."""
    match = re.search(r"^firewall_boot_loader\(\) \{.*?^\}$", INSTALL_SH.read_text(),
                      re.DOTALL | re.MULTILINE)
    assert match, "install.sh has no firewall_boot_loader()"
    made = subprocess.run(["sh", "-c", f'{match.group(0)}\nfirewall_boot_loader "$1"', "sh",
                           str(ruleset)], capture_output=True, text=True, timeout=30, check=True)
    script = where / "berth-firewall-boot"
    script.write_text(made.stdout)
    return script


def berth_table(lab: Lab) -> str | None:
    text = lab.nft("-s", "list", "ruleset")
    match = re.search(r"^table inet berth \{\n.*?^\}\n", text, re.MULTILINE | re.DOTALL)
    return match.group(0) if match else None


def reboot_firewall(lab: Lab, loader: Path) -> None:
    """What a boot does to the firewall: no Berth table, then the boot loader runs."""
    lab.nft("-f", "-", stdin="table inet berth\ndelete table inet berth\n")
    assert berth_table(lab) is None
    lab.run(lab.server, "sh", str(loader))


def test_an_apply_saves_exactly_the_ruleset_it_applied(clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "etc" / "firewall.nft"
    svc = service(lab, boot, enabled=True, allow=("8443/tcp",))

    async def scenario() -> None:
        plan = await svc.plan(None)
        result = await svc.apply(ssh_connection=None, confirm_within=None)
        assert result.changed and result.notes == ()
        assert boot.read_text() == plan.text
        status = await svc.status()
        assert status.boot_saved and status.boot_digest == status.live_digest == plan.digest
        assert f"At boot: {boot} loads the table loaded now." in status.render()
        assert boot.stat().st_mode & 0o777 == 0o644
        lab.nft("-c", "-f", str(boot))  # nft accepts it as it is
        # A missing (or stale) file is put right by an apply that changes nothing.
        boot.unlink()
        assert not (await svc.apply(ssh_connection=None, confirm_within=None)).changed
        assert boot.read_text() == plan.text

    asyncio.run(scenario())
    applied = berth_table(lab)
    reboot_firewall(lab, boot_loader(boot, tmp_path))
    assert berth_table(lab) == applied  # the boot loads the very table the agent applied


def test_after_an_sshd_port_change_the_boot_ruleset_lets_the_new_port_in(
        clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "firewall.nft"
    asyncio.run(service(lab, boot).apply(ssh_connection=None, confirm_within=None))
    assert table_ssh_ports(boot.read_text()) == (22,)

    moved = service(lab, boot, sshd=sshd_on(lab, 2222, tmp_path))
    result = asyncio.run(moved.apply(ssh_connection=None, confirm_within=None))
    assert result.changed and "SSH stays open on 2222" in result.message
    assert table_ssh_ports(boot.read_text()) == (2222,)

    reboot_firewall(lab, boot_loader(boot, tmp_path))
    got = lab.connect(lab.client, "10.77.0.1:2222", "[fd77::1]:2222", "10.77.0.1:5432")
    assert got == {"10.77.0.1:2222": "server:2222", "[fd77::1]:2222": "server:2222",
                   "10.77.0.1:5432": "timeout"}


def test_unreadable_sshd_keeps_22_and_the_port_last_applied(
        clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "firewall.nft"
    asyncio.run(service(lab, boot, sshd=sshd_on(lab, 2222, tmp_path)).apply(
        ssh_connection=None, confirm_within=None))
    blind = service(lab, boot, sshd=("false",))  # sshd -T fails

    # Known from the saved boot ruleset alone (the table is gone)...
    lab.nft("-f", "-", stdin="table inet berth\ndelete table inet berth\n")
    result = asyncio.run(blind.apply(ssh_connection=None, confirm_within=None))
    assert "keeping 22, 2222 open" in result.render()
    assert table_ssh_ports(boot.read_text()) == (22, 2222)
    # ...and from the loaded table alone (the file is gone).
    boot.unlink()
    asyncio.run(blind.apply(ssh_connection=None, confirm_within=None))
    assert table_ssh_ports(boot.read_text()) == (22, 2222)


def test_a_change_waiting_for_confirmation_is_saved_once_confirmed(
        clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "firewall.nft"

    async def scenario() -> None:
        await service(lab, boot, allow=("8443/tcp",)).apply(
            ssh_connection=None, confirm_within=None)
        confirmed = boot.read_text()
        svc = service(lab, boot, allow=("9443/tcp",))
        await svc.apply(ssh_connection=None, confirm_within=30)
        assert boot.read_text() == confirmed  # a reboot now comes back to the known state
        assert "loads another table than the one loaded now" in (await svc.status()).render()
        await svc.confirm()
        assert "9443" in boot.read_text()
        confirmed = boot.read_text()

        reverting = service(lab, boot, allow=("7443/tcp",))
        await reverting.apply(ssh_connection=None, confirm_within=0.5)
        deadline = time.monotonic() + 10
        while "7443" in (berth_table(lab) or ""):
            assert time.monotonic() < deadline, "the unconfirmed change did not revert"
            await asyncio.sleep(0.1)
        assert boot.read_text() == confirmed

    asyncio.run(scenario())


def test_turning_the_firewall_off_removes_the_boot_ruleset(
        clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "firewall.nft"
    svc = service(lab, boot)
    loader = boot_loader(boot, tmp_path)

    async def scenario() -> None:
        result = await svc.apply(ssh_connection=None, confirm_within=None)
        assert boot.exists()
        # Applied by hand while berth.toml says it is off: the user is told it will not last.
        assert any(note.startswith("firewall.enabled = false: the agent's next start removes")
                   for note in result.notes)
        await svc.disable()
        assert not boot.exists()
        await svc.apply(ssh_connection=None, confirm_within=None)
        assert boot.exists()
        await svc.forget_boot()  # the agent started with enabled = false
        assert not boot.exists()
        await svc.forget_boot()  # nothing to remove: fine
        assert f"At boot: nothing is loaded (no {boot})." in (await svc.status()).render()

    asyncio.run(scenario())
    # With no file the boot loader loads nothing and succeeds (lab.run raises otherwise).
    reboot_firewall(lab, loader)
    assert berth_table(lab) is None


def test_the_boot_loader_without_a_file_exits_0(clean_lab: Lab, tmp_path: Path) -> None:
    loader = boot_loader(tmp_path / "never-saved.nft", tmp_path)
    done = subprocess.run(["ip", "netns", "exec", clean_lab.server, "sh", str(loader)],
                          check=False, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert berth_table(clean_lab) is None


def test_a_boot_ruleset_that_cannot_be_saved_is_a_note(clean_lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    boot = tmp_path / "plain-file" / "firewall.nft"  # its directory cannot be made
    result = asyncio.run(service(clean_lab, boot).apply(ssh_connection=None, confirm_within=None))
    assert result.changed and berth_table(clean_lab) is not None  # the rules are in force
    assert any(note.startswith("the ruleset loaded at boot could not be saved") and
               "the next boot loads no up-to-date table" in note for note in result.notes)


def test_an_sshd_moved_to_another_port_is_followed_without_an_apply(
        clean_lab: Lab, tmp_path: Path) -> None:
    lab, boot = clean_lab, tmp_path / "firewall.nft"
    sshd = sshd_on(lab, 22, tmp_path)
    svc = service(lab, boot, sshd=sshd, enabled=True)

    async def scenario() -> None:
        assert await svc.follow_sshd() is None  # no table loaded: nothing to follow
        await svc.apply(ssh_connection=None, confirm_within=None)
        assert await svc.follow_sshd() is None  # sshd's ports all let in
        Path(sshd[-1]).write_text(f"Port 2222\nHostKey {lab.workdir / 'hostkey'}\n")
        followed = await svc.follow_sshd()
        assert followed is not None and "SSH stays open on 22, 2222" in followed.message
        assert await svc.follow_sshd() is None
        # Waiting for confirmation: left alone until it is settled.
        Path(sshd[-1]).write_text(f"Port 2200\nHostKey {lab.workdir / 'hostkey'}\n")
        await svc.apply(ssh_connection=None, confirm_within=30)
        assert await svc.follow_sshd() is None
        await svc.confirm()
        assert table_ssh_ports(boot.read_text()) == (2200,)  # an apply took 22, 2222 away
        # Moved once more: added to what is loaded (here 2222), which is kept.
        await service(lab, boot, sshd=sshd_on(lab, 2222, tmp_path)).apply(
            ssh_connection=None, confirm_within=None)
        Path(sshd[-1]).write_text(f"Port 2022\nHostKey {lab.workdir / 'hostkey'}\n")
        assert await svc.follow_sshd() is not None
        assert table_ssh_ports(boot.read_text()) == (2022, 2222)

    asyncio.run(scenario())
    got = lab.connect(lab.client, "10.77.0.1:2222", "10.77.0.1:22")
    reboot_firewall(lab, boot_loader(boot, tmp_path))
    assert lab.connect(lab.client, "10.77.0.1:2222", "10.77.0.1:22") == got == {
        "10.77.0.1:2222": "server:2222", "10.77.0.1:22": "timeout"}
