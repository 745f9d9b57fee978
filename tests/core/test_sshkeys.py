import os
import pwd
import subprocess

import pytest

from agent.hostfiles import UnsafePath
from agent.sshkeys import (
    InvalidKey,
    authorized_line,
    parse_public_key,
    render,
    write_authorized_keys,
)
from agent.store.keys import SshKey


@pytest.fixture(scope="module")
def public_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop",
                    "-f", str(path)], check=True)
    return (path.with_suffix(".pub")).read_text(), path


def test_fingerprint_matches_ssh_keygen(public_key):
    text, path = public_key
    normalized, fingerprint = parse_public_key(text)
    expected = subprocess.run(["ssh-keygen", "-l", "-f", str(path) + ".pub"],
                              capture_output=True, text=True, check=True).stdout.split()[1]
    assert fingerprint == expected
    assert normalized.startswith("ssh-ed25519 ") and "me@laptop" not in normalized


@pytest.mark.parametrize("text", [
    "", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "ssh-ed25519 !!!notbase64",
    'command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "ssh-ed25519 AAAA a\nssh-ed25519 AAAA b",
])
def test_bad_keys_are_refused(text):
    with pytest.raises(InvalidKey):
        parse_public_key(text)


def test_lines_force_the_command_and_restrict_everything(public_key):
    normalized, fingerprint = parse_public_key(public_key[0])
    line = authorized_line("/usr/bin/berth", SshKey("laptop", normalized, fingerprint, 0))
    assert line.startswith('command="/usr/bin/berth ssh-command laptop",')
    options = line.split('",', 1)[1].split(" ", 1)[0].split(",")
    assert options == ["restrict", "pty", "no-port-forwarding", "no-agent-forwarding",
                       "no-X11-forwarding", "no-user-rc"]  # pty after restrict, or it is off


def test_a_line_an_older_berth_wrote_takes_the_current_options(public_key):
    normalized, fingerprint = parse_public_key(public_key[0])
    key = SshKey("laptop", normalized, fingerprint, 0)
    old = authorized_line("/usr/bin/berth", key).replace(
        "restrict,pty,", "restrict,").replace("no-X11-forwarding,", "no-X11-forwarding,no-pty,")
    assert "no-pty" in old
    text = render("ssh-ed25519 AAAAforeign admin\n" + old + "\n", "/usr/bin/berth", [key])
    assert "no-pty" not in text and text.count("ssh-command") == 1
    assert authorized_line("/usr/bin/berth", key) + "\n" in text


def test_render_keeps_foreign_lines_and_replaces_berths(public_key):
    normalized, fingerprint = parse_public_key(public_key[0])
    key = SshKey("laptop", normalized, fingerprint, 0)
    existing = "ssh-ed25519 AAAAforeign admin\n" + authorized_line("/old/berth", key) + "\n"
    text = render(existing, "/new/berth", [key])
    assert text.count("ssh-command") == 1
    assert "/new/berth" in text and "/old/berth" not in text
    assert "AAAAforeign admin" in text
    assert render(text, "/new/berth", []) == "ssh-ed25519 AAAAforeign admin\n"


def test_file_is_private_and_replaced_atomically(tmp_path):
    path = tmp_path / "ssh" / "authorized_keys"
    write_authorized_keys(path, "line\n", owner=None)
    assert path.read_text() == "line\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert os.listdir(path.parent) == ["authorized_keys"]


def test_the_file_and_its_directory_become_the_owners(tmp_path):
    berth = pwd.getpwnam("berth")
    path = tmp_path / "home" / ".ssh" / "authorized_keys"
    write_authorized_keys(path, "line\n", owner="berth")
    for item in (path, path.parent):
        assert (item.stat().st_uid, item.stat().st_gid) == (berth.pw_uid, berth.pw_gid)
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_a_symlinked_ssh_directory_is_refused_and_not_followed(tmp_path):
    target = tmp_path / "root-dir"
    target.mkdir(mode=0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".ssh").symlink_to(target)
    with pytest.raises(UnsafePath, match=r"\.ssh: a symbolic link"):
        write_authorized_keys(home / ".ssh" / "authorized_keys", "line\n", owner="berth")
    assert list(target.iterdir()) == []
    assert target.stat().st_uid == 0 and oct(target.stat().st_mode & 0o777) == "0o755"


def test_a_foreign_owned_ssh_directory_is_refused(tmp_path):
    import os
    import pwd

    nobody = pwd.getpwnam("nobody")
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    os.chown(ssh, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(UnsafePath, match=f"owned by uid {nobody.pw_uid}"):
        write_authorized_keys(ssh / "authorized_keys", "line\n", owner="berth")
    assert ssh.stat().st_uid == nobody.pw_uid


def test_authorized_keys_linked_to_a_root_only_file_is_not_read(tmp_path):
    from agent.sshkeys import read_authorized_keys

    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    berth = pwd.getpwnam("berth")
    os.chown(ssh, berth.pw_uid, berth.pw_gid)
    (ssh / "authorized_keys").symlink_to(secret)
    with pytest.raises(UnsafePath, match="authorized_keys: a symbolic link"):
        read_authorized_keys(ssh / "authorized_keys", owner="berth")
    (ssh / "authorized_keys").unlink()
    assert read_authorized_keys(ssh / "authorized_keys", owner="berth") == ""
    (ssh / "authorized_keys").write_text("ssh-ed25519 AAAA other\n")
    assert read_authorized_keys(ssh / "authorized_keys", owner="berth") == "ssh-ed25519 AAAA other\n"
    assert read_authorized_keys(tmp_path / "nohome" / ".ssh" / "authorized_keys", owner="berth") == ""
