"""Deploys: from a pushed tree (or an existing image) to live containers behind the proxy.

`orchestrator` (the `Deployer`) runs each operation on an app as a short chain of steps
(build, release phase, roll out, certificates) from one `snapshot` of the app; `rollout`
starts, checks, swaps and drains, through the `scheduler` seam (where instances run);
`earlystart` starts a push's instances while its image commits; `plan` is pure (what to
run and how to name it), `health`, `binding` and `listeners` judge new instances;
`reconciler` makes the running world match the database at boot and periodically;
`errors` holds what a failed operation raises. The engine is reached through `runtime`.
"""
