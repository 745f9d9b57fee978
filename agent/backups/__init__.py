"""Backups of add-ons: captured, listed, downloaded, restored and verified.

`model` (a backup's record and names: pure), `store` (the backups table), `files`
(writing a dump safely: temp name, checksum, rename), `dumps` (what runs inside the
add-on to dump and restore each kind), `service` (capture, restore, verify).
"""
