"""The control API: a Starlette app on a unix socket, the agent's only front door.

The CLI (as root on the server, or as `berth` behind an SSH forced command) and the git
hooks talk to it. Plain JSON for reads and quick changes; long operations (deploys,
config releases, scaling, restarts) answer with a stream of NDJSON events: `{"line": ...}`
for each output line, then `{"result": ...}` or `{"error": ..., "status": ...}`.
"""
