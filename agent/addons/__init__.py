"""Add-ons: Postgres and Redis containers that belong to one app (`addons:create`).

`model` (what an add-on is, its names and URL: pure), `settings` ([addons] in
berth.toml), `store` (the add-ons table), `tls` (the certificate Postgres serves),
`engine` (the Docker adapter), `service` (create, destroy, bring back).
"""
