"""The host firewall: one nftables table of Berth's own, covering Docker's forward path."""
