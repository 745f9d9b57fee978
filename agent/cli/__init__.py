"""The `berth` command: a thin client of the agent's control API, the same on the server
(as root) and over SSH (`ssh berth@HOST VERB ARGS`, through the forced command), plus the
entry points that are not verbs: `berth agent`, `berth ssh-command`, `berth hook`."""
