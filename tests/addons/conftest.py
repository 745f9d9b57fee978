"""The add-on tests' fixtures: `world` (add-ons and backups on the real Docker engine,
defined beside the World it yields) and `s3` (a local S3-compatible server)."""

from addon_world import world  # noqa: F401 (the fixture, for every module here)
from s3_world import s3  # noqa: F401 (the fixture, for every module here)
