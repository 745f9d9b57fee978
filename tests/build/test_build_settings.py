"""BuildSettings: defaults are the official images; berth.toml values are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.build.engine import check_free_disk, container_limits
from agent.build.errors import NotEnoughDisk
from agent.build.settings import BuildSettings
from agent.config import parse_config
from agent.errors import ConfigError


def test_defaults_are_the_official_images() -> None:
    settings = BuildSettings()
    assert settings.python_image == "python:{version}-slim"
    assert settings.node_image == "node:{version}-slim"
    assert settings.static_image.startswith("nginx:")
    assert settings.ca_bundle is None


def test_build_table_of_berth_toml() -> None:
    config = parse_config(
        '[build]\nparallel = 3\nca_bundle = "/etc/corp.pem"\nmemory_mb = 512\ncpuset = "0"\n'
        'python_image = "mirror/python:{version}"\nextra_buildpacks_dir = "/srv/packs"\n'
    )
    assert config.build.parallel == 3
    assert config.build.ca_bundle == Path("/etc/corp.pem")
    assert config.build.extra_buildpacks_dir == Path("/srv/packs")


@pytest.mark.parametrize(
    "line",
    [
        "parallel = 0",
        "memory_mb = 3",
        'cpuset = "all"',
        "timeout = 0",
        'python_image = " "',
        "memory_mb = -1",
    ],
)
def test_bad_values_are_one_config_error(line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"[build]\n{line}\n")
    assert str(caught.value).startswith("config: build")


def test_container_limits() -> None:
    assert container_limits(BuildSettings(memory_mb=512, cpu_shares=256, cpuset="0-1")) == {
        "memory": 512 * 1024 * 1024,
        "memswap": 512 * 1024 * 1024,
        "cpushares": 256,
        "cpusetcpus": "0-1",
    }
    assert container_limits(BuildSettings(memory_mb=0, cpu_shares=0)) == {}


def test_free_disk_check() -> None:
    check_free_disk(Path("/var/lib/docker"), 3 * 1024**3, 2048)
    with pytest.raises(NotEnoughDisk) as caught:
        check_free_disk(Path("/var/lib/docker"), 1024**3, 2048)
    assert str(caught.value) == (
        "not building: /var/lib/docker has 1024 MiB free, builds need at least 2048 MiB"
        " (remove old images or lower build.min_free_disk_mb)"
    )
