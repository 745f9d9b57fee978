"""Deploys: from a pushed tree (or an existing image) to live containers behind the proxy.

`plan` is pure (what to run and how to name it), `health` probes new instances,
`orchestrator` runs the steps (build, release phase, start, check, swap, drain, stop),
`reconciler` makes the running world match the database at boot and periodically. The
container engine and the proxy are reached through the small Protocols in `ports`.
"""
