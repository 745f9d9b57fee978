"""Whole-server backup and restore (`berth backup`, `berth restore`).

`manifest` says what an archive must hold (pure), `archive` writes and unpacks the tar
with every member checked, `service` writes a server's archive (fresh add-on dumps, an
online copy of the state database), `swap` puts a staged tree in place of the live one
(or back), and `restoring` runs a restore as a chain of named steps.
"""
