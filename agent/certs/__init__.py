"""The certificate manager: ACME accounts, HTTP-01 issuance, storage and renewal.

Modules, outside in: `manager` (the `CertificateManager` service the agent runs),
`serving` (which certificate each domain gets; keeps the proxy's store in line),
`acme_client` (the only module that touches certbot's blocking `acme`: run in threads),
`preflight` (does a name lead to this host?); the pure core: `policy` (renewal, backoff,
scan timing), `keys` (keys, CSRs, certificate inspection), `status` (`CertStatus`, the
`berth certs` table); state: `storage` (files, keyed by directory URL), `state` (SQLite
tables, `SCHEMA`); `interfaces` (what the manager needs from the proxy and the CA),
`errors`, `settings` (`[acme]`).
"""
