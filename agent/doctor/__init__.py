"""`berth doctor`: what is wrong with this server, one line per check with ok, warn or
fail and, when not ok, the fix. `findings` judges (pure), `probes` looks (I/O),
`checkup` runs every check and never lets one broken probe stop the others."""
