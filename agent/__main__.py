"""`python -m agent` runs the `berth` command."""

from agent.cli.main import main

raise SystemExit(main())
