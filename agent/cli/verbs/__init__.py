"""The CLI verbs, one module per resource; each exposes VERBS."""
