"""The add-on tests' fixture: `world` (add-ons and backups on the real Docker engine,
defined beside the World it yields)."""

from addon_world import world  # noqa: F401 (the fixture, for every module here)
