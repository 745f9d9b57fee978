"""Whole-server backup and restore (`berth backup`, `berth restore`).

`manifest` says what an archive must hold (pure), `archive` writes and unpacks the tar
with every member checked, `sources` gathers what a server is made of, `swap` puts a
staged tree in place of the live one (or back), and `service` runs both operations.
"""
