"""The certificate manager: ACME accounts, HTTP-01 issuance, storage and renewal."""
