"""Berth: a Heroku-style PaaS that lives on one VPS.

The package is the agent (one asyncio process holding the proxy, the control API, the
deploy worker, the certificate manager and the reconciler) and the `berth` CLI, a thin
client of the agent's control API.
"""

__version__ = "0.1.0"
