"""The deploy tests' fixtures: `world` (a deployer with fake engine, builder and router)
and `early` (the same, whose engine and builder also do what an early start asks)."""

from tests.deploy.fakes import early, world  # noqa: F401 (fixtures, defined beside the fakes)
